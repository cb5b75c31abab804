"""A collector: a vector env stepped by an ε-greedy inference copy of the Q-network.

It emits n-step transitions with initial priorities from its own |TD error| (Ape-X), plus episode
statistics. It knows nothing of Ray or of the replay: the local runner adds its output to a
replay object, the Ray actor wrapper pushes it to the replay actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from components.nets.qnets import inference_copy
from components.replay.batch import Transitions
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
    own env seeds and a fresh range of episode ids, so (collector, episode) stays unique in the replay."""

    def __init__(
        self, cfg: DQNConfig, index: int, obs_shape: tuple[int, ...], n_actions: int, generation: int = 0
    ) -> None:
        self.cfg, self.index = cfg, index
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

    def run(self, num_steps: int) -> tuple[Transitions, EpisodeStats]:
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
                item = Pending(
                    self.obs[e],
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
        return batch, stats

    def _to_transitions(self, emitted: list[Emitted]) -> Transitions:
        if not emitted:
            shape = self.obs.shape[1:]
            z = np.zeros(0)
            return Transitions(
                np.zeros((0, *shape), self.obs.dtype),
                z.astype(np.int64),
                z.astype(np.float32),
                np.zeros((0, *shape), self.obs.dtype),
                z.astype(bool),
                z.astype(np.uint8),
                z.astype(np.float32),
                z.astype(np.int16),
                z.astype(np.int64),
                z.astype(np.int32),
                z.astype(bool),
            )
        obs = np.stack([t.obs for t in emitted])
        next_obs = np.stack([t.next_obs for t in emitted])
        ret = np.array([t.ret for t in emitted], dtype=np.float32)
        done = np.array([t.done for t in emitted])
        n = np.array([t.n for t in emitted], dtype=np.uint8)
        q_taken = np.array([t.q_taken for t in emitted], dtype=np.float32)
        # Initial priority |R + γⁿ(1 − done)·max_a Q(s', a) − Q(s, a)| with the collector's own network.
        bootstrap = self._q(next_obs).max(axis=1)
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
