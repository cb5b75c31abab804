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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.replay.batch import PixelTransitions, Transitions
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import vector_env
from components.rl.dqn.epsilon import apex_epsilons
from components.rl.dqn.nstep import SegmentNStep, Windows
from components.rl.dqn.numpy_q import NumpyQNetwork
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
    collector: int = 0  # the collector's index
    epsilon: float = float("nan")  # mean ε over its envs during the call


class Collector:
    """``generation`` counts replacements of collector ``index`` after faults: a replacement gets its
    own env seeds and a fresh range of episode ids, so (collector, episode) stays unique in the replay.

    ``frames`` (default: ``atari.enabled``) sends each frame once; ``frames=False`` on Atari sends
    whole stacks, for a ``ReplayBuffer`` (the path the frame mode is tested against).

    ``q_fn`` answers Q-values [N, A] for observations [N, ...] in place of the collector's own copy of
    the network (``collectors.inference: gpu``: an inference actor batching every collector's requests,
    ``components/rl/dqn/batched_inference.py``); the collector then needs no weights of its own.

    Its own copy is numpy for an MLP (:class:`NumpyQNetwork`: a collector on vector observations never
    imports torch), and a torch inference copy of the CNN, with batch norm folded, for frames."""

    def __init__(
        self,
        cfg: DQNConfig,
        index: int,
        obs_shape: tuple[int, ...],
        n_actions: int,
        generation: int = 0,
        frames: bool | None = None,
        q_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.cfg, self.index, self.generation = cfg, index, generation
        c = cfg.collectors
        self.num_envs = c.envs_per_collector
        self.seed = cfg.seed * 1000 + index * c.envs_per_collector + generation * 1_000_003
        self.envs = vector_env(cfg, self.num_envs, self.seed)
        self.obs, _ = self.envs.reset(seed=self.seed)
        self.q_fn = q_fn
        self.numpy_q: NumpyQNetwork | None = None
        self.torch_q: Any = None  # frames: a torch CNN (torch_policy.TorchPolicy)
        if q_fn is None and cfg.network.kind == "mlp":
            self.numpy_q = NumpyQNetwork(cfg.network, int(np.prod(obs_shape)), n_actions, self.seed)
        elif q_fn is None:
            # torch only here: an MLP collector acts with numpy and never imports it (~2 s at start-up)
            from components.rl.dqn.torch_policy import TorchPolicy

            self.torch_q = TorchPolicy(cfg.network, obs_shape, n_actions, self.seed)
        self.n_actions = n_actions
        self.rng = np.random.default_rng(self.seed)
        self.nstep = SegmentNStep(self.num_envs, cfg.learner.n_step, cfg.learner.gamma)
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
        self.carry = self._records(0)  # the recorded steps whose n-step windows are still open

    def set_weights(self, flat: np.ndarray) -> None:
        if self.numpy_q is not None:
            self.numpy_q.set_weights(flat)
            return
        if self.torch_q is None:
            return  # Q-values come from the inference actor, which gets the weights itself
        self.torch_q.set_weights(flat)

    def get_weights(self) -> np.ndarray:
        """The flat weights the collector acts on (as ``networks.get_flat_weights`` lays them out);
        none when an inference actor answers its Q-values."""
        if self.numpy_q is not None:
            return self.numpy_q.get_weights()
        if self.torch_q is None:
            return np.zeros(0, dtype=np.float32)
        return self.torch_q.get_weights()  # type: ignore[no-any-return]

    def epsilons(self) -> np.ndarray:
        if self.cfg.collectors.epsilon == "schedule":
            total = self.env_steps * self.cfg.collectors.num_collectors
            return np.full(self.num_envs, schedule_value(self.cfg.collectors.schedule, total))
        return self.apex_eps

    def _q(self, obs: np.ndarray) -> np.ndarray:
        """Q-values [N, A] of what the collector acts on."""
        if self.q_fn is not None:
            return self.q_fn(obs)
        if self.numpy_q is not None:
            return self.numpy_q(obs)
        return self.torch_q(obs)  # type: ignore[no-any-return]

    def run(self, num_steps: int) -> tuple[Transitions | PixelTransitions, EpisodeStats]:
        """Step every env ``num_steps`` times; return the completed n-step transitions and episode stats.

        The steps are recorded as [T, E] arrays and cut into n-step windows once, for every env
        together (:class:`SegmentNStep`); Python loops only over the envs whose episode just ended.
        """
        eps = self.epsilons()
        stats = EpisodeStats(collector=self.index, epsilon=float(eps.mean()))
        steps, envs, arange = num_steps, self.num_envs, np.arange(self.num_envs)
        rec = self._records(steps)
        for i in range(steps):
            q = self._q(self.obs)  # [E, A]
            greedy = q.argmax(axis=1)
            explore = self.rng.random(envs) < eps
            actions = np.where(explore, self.rng.integers(0, self.n_actions, envs), greedy)
            fresh = self.ep_step == 0
            self.ep_q_start[fresh] = q[fresh].max(axis=1)
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
            ended = terminated | truncated
            done_envs = np.flatnonzero(ended).tolist()
            nxt = next_obs
            if len(done_envs):
                nxt = next_obs.copy()
                for e in done_envs:
                    nxt[e] = info["final_obs"][e]
            if self.frames:  # obs and next obs as frame ids [S]; the pixels of next obs serve Q
                for k in range(envs):
                    rec["obs"][i, k], rec["next"][i, k] = self._frame_step(
                        k, bool(ended[k]), nxt[k], next_obs[k]
                    )
                rec["next_pixels"][i] = nxt
            else:
                rec["obs"][i], rec["next"][i] = self.obs, nxt
            rec["action"][i], rec["q"][i] = actions, q[arange, actions]
            rec["step"][i], rec["episode"][i] = self.ep_step, self.ep_id
            rec["reward"][i], rec["terminated"][i], rec["truncated"][i] = rewards, terminated, truncated
            self.ep_disc_return += self.gamma**self.ep_step * rewards
            self.ep_return += rewards
            self.ep_step += 1
            for e in done_envs:
                stats.returns.append(float(self.ep_return[e]))
                stats.lengths.append(int(self.ep_step[e]))
                stats.q_start.append(float(self.ep_q_start[e]))
                stats.mc_return.append(float(self.ep_disc_return[e]))
                self.ep_return[e] = self.ep_disc_return[e] = 0.0
                self.ep_step[e] = 0
                self.ep_id[e] = self.episodes_started
                self.episodes_started += 1
            self.obs = next_obs
            self.env_steps += envs
            stats.env_steps += envs
        w = self.nstep.process(rec["reward"], rec["terminated"], rec["truncated"])
        rows = {k: np.concatenate([self.carry[k], v]) for k, v in rec.items()}
        self.carry = {k: v[len(v) - self.nstep.carried :] for k, v in rows.items()}
        batch = self._to_transitions(w, rows)
        stats.transitions = len(batch)
        if not self.frames:
            return batch, stats
        h, w_ = self.obs.shape[2:]
        frames = np.stack(self.new_frames) if self.new_frames else np.zeros((0, h, w_), self.obs.dtype)
        push = PixelTransitions(frames, self.sent, self.index, self.generation, batch)
        self.sent += len(self.new_frames)
        self.new_frames = []
        return push, stats

    def _records(self, steps: int) -> dict[str, np.ndarray]:
        """Empty [T, E, ...] arrays for one segment's steps (frame ids in place of stacks with frames)."""
        e = self.num_envs
        shape, dtype = ((e, self.obs.shape[1]), np.int64) if self.frames else (self.obs.shape, self.obs.dtype)
        rec = {
            "obs": np.zeros((steps, *shape), dtype),
            "next": np.zeros((steps, *shape), dtype),
            "action": np.zeros((steps, e), np.int64),
            "q": np.zeros((steps, e), np.float32),
            "step": np.zeros((steps, e), np.int64),
            "episode": np.zeros((steps, e), np.int64),
            "reward": np.zeros((steps, e)),
            "terminated": np.zeros((steps, e), bool),
            "truncated": np.zeros((steps, e), bool),
        }
        if self.frames:
            rec["next_pixels"] = np.zeros((steps, *self.obs.shape), self.obs.dtype)
        return rec

    def _new_frame(self, frame: np.ndarray) -> int:
        self.new_frames.append(frame)
        return self.sent + len(self.new_frames) - 1

    def _frame_step(
        self, e: int, ended: bool, nxt: np.ndarray, reset_obs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Number env ``e``'s new frames; returns the ids [S] of this step's obs and next obs.

        ``nxt`` is the stack after the step (the final one when the episode ended); after an end,
        ``reset_obs`` is the next episode's first stack, whose frame starts the env's ids afresh.
        """
        obs = self.stack_ids[e].copy()
        next_ids = np.append(self.stack_ids[e, 1:], self._new_frame(nxt[-1]))
        self.stack_ids[e] = self._new_frame(reset_obs[-1]) if ended else next_ids
        return obs, next_ids

    def _to_transitions(self, w: Windows, rows: dict[str, np.ndarray]) -> Transitions:
        """Gather the completed windows from the recorded rows, with the collector's initial priorities."""
        s, e, end = w.start, w.env, w.end
        ret, n = w.ret.astype(np.float32), w.n.astype(np.uint8)
        next_pixels = rows["next_pixels"][end, e] if self.frames else rows["next"][end, e]
        # Initial priority |R + γⁿ(1 − done)·max_a Q(s', a) − Q(s, a)| with the collector's own network.
        bootstrap = self._q(next_pixels).max(axis=1) if len(s) else np.zeros(0, np.float32)
        target = ret + (self.gamma ** n.astype(np.float32)) * (~w.done) * bootstrap
        return Transitions(
            obs=rows["obs"][s, e],
            action=rows["action"][s, e],
            reward=ret,
            next_obs=rows["next"][end, e],
            done=w.done,
            n=n,
            priority=np.abs(target - rows["q"][s, e]).astype(np.float32),
            collector=np.full(len(s), self.index, dtype=np.int16),
            episode=rows["episode"][s, e],
            step=rows["step"][s, e].astype(np.int32),
            truncated=w.truncated,
        )
