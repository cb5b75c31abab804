"""The Ray layer of DQN: the pure Collector and ReplayBuffer as actors, and the wiring the loop drives.

Collectors push their batches straight into the replay actor (Ape-X's shared buffer), keeping at
most ``max_in_flight`` adds outstanding so they go on stepping while the last batch travels. The
learner (in the driver) prefetches its next ``batches_per_call`` batches while it trains on the
current ones, and broadcasts weights with one ``ray.put`` per publish: every collector reads the
same object-store copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from components.replay.batch import SampledBatch, Transitions
from components.replay.buffer import ReplayBuffer
from components.replay.rate_limiter import SamplesPerInsert
from components.rl.dqn.collector import Collector, EpisodeStats
from components.rl.dqn.config import DQNConfig


@ray.remote(num_cpus=0)
class ReplayActor:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any) -> None:
        self.buffer = ReplayBuffer(cfg.replay, obs_shape, np.dtype(obs_dtype), seed=cfg.seed)

    def add(self, batch: Transitions) -> int:
        self.buffer.add(batch)
        return len(batch)

    def sample_many(self, batch_size: int, count: int, beta: float) -> list[SampledBatch]:
        return self.buffer.sample_many(batch_size, count, beta)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(idx, priorities)

    def size(self) -> int:
        return len(self.buffer)


@ray.remote(num_cpus=1)
class CollectorActor:
    def __init__(
        self, cfg: DQNConfig, index: int, obs_shape: tuple[int, ...], n_actions: int, replay: Any
    ) -> None:
        import torch

        torch.set_num_threads(1)
        self.collector = Collector(cfg, index, obs_shape, n_actions)
        self.replay = replay
        self.max_in_flight = cfg.collectors.max_in_flight
        self.in_flight: list[Any] = []

    def set_weights(self, flat: np.ndarray) -> None:
        self.collector.set_weights(flat)

    def run(self, num_steps: int) -> EpisodeStats:
        batch, stats = self.collector.run(num_steps)
        if len(self.in_flight) >= self.max_in_flight:
            _, self.in_flight = ray.wait(
                self.in_flight, num_returns=len(self.in_flight) - self.max_in_flight + 1
            )
        self.in_flight.append(self.replay.add.remote(batch))
        return stats

    def flush(self) -> int:
        """Wait for every outstanding add; returns how many there were."""
        n = len(ray.get(self.in_flight))
        self.in_flight = []
        return n


class RayWiring:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> None:
        self.cfg = cfg
        self.replay = ReplayActor.remote(cfg, obs_shape, np.dtype(obs_dtype).str)
        self.collectors = [
            CollectorActor.remote(cfg, i, obs_shape, n_actions, self.replay)
            for i in range(cfg.collectors.num_collectors)
        ]
        self.running: dict[Any, int] = {}  # ObjectRef of a run() call -> collector index
        self.idle_collectors = set(range(len(self.collectors)))
        self.prefetch: Any = None
        self.per_call = cfg.collectors.steps_per_call * cfg.collectors.envs_per_collector
        self._size = 0

    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]:
        out = []
        if self.running:
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for ref in ready:
                self.idle_collectors.add(self.running.pop(ref))
                out.append(ray.get(ref))
        for i in sorted(self.idle_collectors):
            if not limiter.can_insert(self.per_call * (len(self.running) + 1)):
                break
            self.running[self.collectors[i].run.remote(self.cfg.collectors.steps_per_call)] = i
            self.idle_collectors.discard(i)
        return out

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        if self.prefetch is None:
            self.prefetch = self.replay.sample_many.remote(self.cfg.learner.batch_size, count, beta)
        batches = ray.get(self.prefetch)
        self.prefetch = self.replay.sample_many.remote(self.cfg.learner.batch_size, count, beta)
        return batches  # type: ignore[no-any-return]

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.replay.update_priorities.remote(idx, priorities)

    def publish(self, weights: np.ndarray) -> None:
        ref = ray.put(weights)  # one copy in the object store, read zero-copy by every collector
        for c in self.collectors:
            c.set_weights.remote(ref)

    def idle(self) -> None:
        if self.running:
            ray.wait(list(self.running), num_returns=1, timeout=0.005)

    def replay_size(self) -> int:
        self._size = int(ray.get(self.replay.size.remote()))
        return self._size

    def stop(self) -> None:
        for a in [*self.collectors, self.replay]:
            ray.kill(a)
