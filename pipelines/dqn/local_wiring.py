"""The DQN wiring with everything in this process (``local: true``): the counterpart of ``RayWiring``
(``pipelines/distributed/ray_wiring.py``), used for debugging and unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.replay.batch import SampledBatch
from components.replay.factory import make_replay
from components.replay.rate_limiter import SamplesPerInsert
from components.replay.snapshot import Compression, read_replay, write_replay
from components.rl.dqn.collector import Collector, EpisodeStats
from components.rl.dqn.config import DQNConfig


class LocalWiring:
    """Collectors run in turn and add straight into the replay; there is nothing to restart."""

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> None:
        self.cfg = cfg
        torch.set_num_threads(1)  # collectors' batch-of-8 forwards are slower on more threads
        self.collectors = [
            Collector(cfg, i, obs_shape, n_actions) for i in range(cfg.collectors.num_collectors)
        ]
        self.replay = make_replay(
            cfg.replay, obs_shape, obs_dtype, seed=cfg.seed, frame_stack=cfg.atari.enabled
        )
        self.batch_size = cfg.learner.batch_size
        self.turn = 0
        self.faults = {"collector_restarts": 0.0, "replay_restarts": 0.0, "replay_lost_transitions": 0.0}

    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]:
        c = self.collectors[self.turn % len(self.collectors)]
        if not limiter.can_insert(self.cfg.collectors.steps_per_call * c.num_envs):
            return []
        self.turn += 1
        batch, stats = c.run(self.cfg.collectors.steps_per_call)
        self.replay.add(batch)
        return [stats]

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        return self.replay.sample_many(self.batch_size, count, beta)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.replay.update_priorities(idx, priorities)

    def publish(self, weights: np.ndarray) -> None:
        for c in self.collectors:
            c.set_weights(weights)

    def idle(self) -> None:
        pass

    def replay_size(self) -> int:
        return len(self.replay)

    def stop(self) -> None:
        pass

    def save_replay(self, path: Path, compression: Compression) -> dict[str, Any]:
        return write_replay(self.replay, path, compression)

    def load_replay(self, path: Path) -> dict[str, Any]:
        return read_replay(self.replay, path)

    def set_snapshot(self, path: Path, inserts: int) -> None:
        """Nothing restarts in one process, so nothing needs to know the last snapshot."""

    def collector_env_steps(self) -> list[int]:
        return [c.env_steps for c in self.collectors]

    def restore_collectors(self, env_steps: list[int]) -> None:
        for c, n in zip(self.collectors, env_steps):
            c.env_steps = n  # the ε schedule's position

    def fault_counts(self) -> dict[str, float]:
        """Nothing restarts in one process; counts restored from a checkpoint (a run that began on
        Ray) are carried on."""
        return dict(self.faults)

    def restore_fault_counts(self, counts: dict[str, float]) -> None:
        self.faults.update({k: float(v) for k, v in counts.items() if k in self.faults})
