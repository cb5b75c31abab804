"""A collector: a vector env stepped by an ε-greedy inference copy of the Q-network.

It emits n-step transitions with initial priorities from its own |TD error| (Ape-X), plus episode
statistics. It knows nothing of Ray or of the replay: the local runner adds its output to a
replay object, the Ray actor wrapper pushes it to the replay actor.

With stacked Atari frames (``atari.enabled``) it sends every 84×84 frame once
(:class:`PixelTransitions`): the reset frame of each episode and the newest frame after each step,
numbered by the collector, and the transitions as stacks of those numbers, which a
``PixelReplayBuffer`` maps to its own frame ids. A push shrinks about 8× for 4-frame stacks. The
numbers follow ``FrameStackObservation``: a step shifts the stack by one frame, a reset repeats its
frame S times. The initial priorities still come from the full stacks, which the collector has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from components.nets.qnets import inference_copy
from components.replay.batch import PixelTransitions, Transitions
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import vector_env
from components.rl.dqn.epsilon import apex_epsilons
from components.rl.dqn.networks import build_q_network, set_flat_weights
from components.rl.dqn.nstep import Emitted, NStepAccumulator, Pending
from components.rl.schedules import schedule_value


@dataclass
class EpisodeStats:
    """Episodes finished during one collector call."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    q_start: list[float] = field(default_factory=list)  # max_a Q(s_0, a) predicted when the episode began
    mc_return: list[float] = field(default_factory=list)  # Σ_t γ^t r_t actually received from s_0
    env_steps: int = 0
    transitions: int = 0


class Collector:
    """``generation`` counts replacements of collector ``index`` after faults: a replacement gets its
    own env seeds and a fresh range of episode ids, so (collector, episode) stays unique in the replay.

    ``frames`` (default: ``atari.enabled``) sends each frame once; ``frames=False`` on Atari sends
    whole stacks, for a ``ReplayBuffer`` (the path the frame mode is tested against)."""

    def __init__(
        self,
        cfg: DQNConfig,
        index: int,
        obs_shape: tuple[int, ...],
        n_actions: int,
        generation: int = 0,
        frames: bool | None = None,
    ) -> None:
        self.cfg, self.index, self.generation = cfg, index, generation
        c = cfg.collectors
        self.num_envs = c.envs_per_collector
        self.seed = cfg.seed * 1000 + index * c.envs_per_collector + generation * 1_000_003
        self.envs = vector_env(cfg, self.num_envs, self.seed)
        self.obs, _ = self.envs.reset(seed=self.seed)
        torch.manual_seed(self.seed)
        self.net = build_q_network(cfg.network, obs_shape, n_actions)
        self.policy = inference_copy(self.net)
        self.n_actions = n_actions
        self.rng = np.random.default_rng(self.seed)
        self.nstep = NStepAccumulator(self.num_envs, cfg.learner.n_step, cfg.learner.gamma)
        total = c.num_collectors * self.num_envs
        all_eps = apex_epsilons(total, c.apex_base, c.apex_alpha)
        self.apex_eps = all_eps[index * self.num_envs : (index + 1) * self.num_envs]
        self.env_steps = 0
        self.ep_step = np.zeros(self.num_envs, dtype=np.int64)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_disc_return = np.zeros(self.num_envs)
        self.ep_q_start = np.full(self.num_envs, np.nan)
        base = generation << 40  # episode ids of generation g start at g·2^40
        self.ep_id = base + np.arange(self.num_envs, dtype=np.int64)  # unique per collector
        self.episodes_started = base + self.num_envs
        self.gamma = cfg.learner.gamma
        self.frames = cfg.atari.enabled if frames is None else frames
        if self.frames:
            self.stack_ids = np.zeros((self.num_envs, self.obs.shape[1]), dtype=np.int64)  # [E, S] local
            self.new_frames: list[np.ndarray] = []  # produced since the last push, local ids from sent on
            self.sent = 0  # local id of new_frames[0]
            for e in range(self.num_envs):
                self.stack_ids[e] = self._new_frame(self.obs[e, -1])

    def set_weights(self, flat: np.ndarray) -> None:
        set_flat_weights(self.net, flat)
        if self.cfg.network.batch_norm:
            self.policy = inference_copy(self.net)  # re-fold BN with the new statistics
        else:
            set_flat_weights(self.policy, flat)

    def epsilons(self) -> np.ndarray:
        if self.cfg.collectors.epsilon == "schedule":
            total = self.env_steps * self.cfg.collectors.num_collectors
            return np.full(self.num_envs, schedule_value(self.cfg.collectors.schedule, total))
        return self.apex_eps

    @torch.no_grad()
    def _q(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(torch.as_tensor(obs)).numpy()

    def run(self, num_steps: int) -> tuple[Transitions | PixelTransitions, EpisodeStats]:
        """Step every env ``num_steps`` times; return the completed n-step transitions and episode stats."""
        emitted: list[Emitted] = []
        stats = EpisodeStats()
        eps = self.epsilons()
        for _ in range(num_steps):
            q = self._q(self.obs)  # [E, A]
            greedy = q.argmax(axis=1)
            explore = self.rng.random(self.num_envs) < eps
            actions = np.where(explore, self.rng.integers(0, self.n_actions, self.num_envs), greedy)
            fresh = self.ep_step == 0
            self.ep_q_start[fresh] = q[fresh].max(axis=1)
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
            ended = terminated | truncated
            final_obs = info.get("final_obs") if ended.any() else None
            for e in range(self.num_envs):
                r = float(rewards[e])
                nxt = final_obs[e] if ended[e] else next_obs[e]  # type: ignore[index]
                obs: Any = self.obs[e]
                if self.frames:  # obs as ids [S]; next obs as (ids [S], pixels [S, H, W]) for Q
                    obs, nxt = self._frame_step(e, ended[e], nxt, next_obs[e])
                item = Pending(
                    obs,
                    int(actions[e]),
                    r,
                    int(self.ep_step[e]),
                    float(q[e, actions[e]]),
                    int(self.ep_id[e]),
                )
                for t in self.nstep.push(e, item, nxt, bool(terminated[e]), bool(truncated[e])):
                    emitted.append(t)
                self.ep_disc_return[e] += self.gamma ** self.ep_step[e] * r
                self.ep_return[e] += r
                self.ep_step[e] += 1
                if ended[e]:
                    stats.returns.append(float(self.ep_return[e]))
                    stats.lengths.append(int(self.ep_step[e]))
                    stats.q_start.append(float(self.ep_q_start[e]))
                    stats.mc_return.append(float(self.ep_disc_return[e]))
                    self.ep_return[e] = self.ep_disc_return[e] = 0.0
                    self.ep_step[e] = 0
                    self.ep_id[e] = self.episodes_started
                    self.episodes_started += 1
            self.obs = next_obs
            self.env_steps += self.num_envs
            stats.env_steps += self.num_envs
        batch = self._to_transitions(emitted)
        stats.transitions = len(batch)
        if not self.frames:
            return batch, stats
        h, w = self.obs.shape[2:]
        frames = np.stack(self.new_frames) if self.new_frames else np.zeros((0, h, w), self.obs.dtype)
        push = PixelTransitions(frames, self.sent, self.index, self.generation, batch)
        self.sent += len(self.new_frames)
        self.new_frames = []
        return push, stats

    def _new_frame(self, frame: np.ndarray) -> int:
        self.new_frames.append(frame)
        return self.sent + len(self.new_frames) - 1

    def _frame_step(
        self, e: int, ended: bool, nxt: np.ndarray, reset_obs: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Number env ``e``'s new frames; returns the obs ids and (next ids, next obs) of this step.

        ``nxt`` is the stack after the step (the final one when the episode ended); after an end,
        ``reset_obs`` is the next episode's first stack, whose frame starts the env's ids afresh.
        """
        obs = self.stack_ids[e].copy()
        next_ids = np.append(self.stack_ids[e, 1:], self._new_frame(nxt[-1]))
        self.stack_ids[e] = self._new_frame(reset_obs[-1]) if ended else next_ids
        return obs, (next_ids, nxt)

    def _to_transitions(self, emitted: list[Emitted]) -> Transitions:
        if not emitted:
            shape = (self.obs.shape[1],) if self.frames else self.obs.shape[1:]
            dtype = np.int64 if self.frames else self.obs.dtype
            z = np.zeros(0)
            return Transitions(
                np.zeros((0, *shape), dtype),
                z.astype(np.int64),
                z.astype(np.float32),
                np.zeros((0, *shape), dtype),
                z.astype(bool),
                z.astype(np.uint8),
                z.astype(np.float32),
                z.astype(np.int16),
                z.astype(np.int64),
                z.astype(np.int32),
                z.astype(bool),
            )
        obs = np.stack([t.obs for t in emitted])
        if self.frames:  # send the ids; the pixels of next_obs serve the priorities below
            next_obs = np.stack([t.next_obs[0] for t in emitted])
            next_pixels = np.stack([t.next_obs[1] for t in emitted])
        else:
            next_obs = next_pixels = np.stack([t.next_obs for t in emitted])
        ret = np.array([t.ret for t in emitted], dtype=np.float32)
        done = np.array([t.done for t in emitted])
        n = np.array([t.n for t in emitted], dtype=np.uint8)
        q_taken = np.array([t.q_taken for t in emitted], dtype=np.float32)
        # Initial priority |R + γⁿ(1 − done)·max_a Q(s', a) − Q(s, a)| with the collector's own network.
        bootstrap = self._q(next_pixels).max(axis=1)
        target = ret + (self.gamma ** n.astype(np.float32)) * (~done) * bootstrap
        priority = np.abs(target - q_taken).astype(np.float32)
        return Transitions(
            obs=obs,
            action=np.array([t.action for t in emitted], dtype=np.int64),
            reward=ret,
            next_obs=next_obs,
            done=done,
            n=n,
            priority=priority,
            collector=np.full(len(emitted), self.index, dtype=np.int16),
            episode=np.array([t.episode for t in emitted], dtype=np.int64),
            step=np.array([t.step for t in emitted], dtype=np.int32),
            truncated=np.array([t.truncated for t in emitted]),
        )
