"""The shared replay as a Ray actor, in a module of its own: it imports no torch.

Ray imports the module that defines an actor's class in the actor's worker process. The collectors
need torch for their networks, but the replay is numpy only, and on a 2-core machine the second of
CPU that importing torch costs is a second of every run's start-up (every process is starting at
once then).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import ray

from components.replay.batch import SampledBatch, Transitions
from components.replay.factory import make_replay
from components.replay.snapshot import Compression, read_replay, write_replay
from components.rl.dqn.config import DQNConfig


@ray.remote(num_cpus=0)
class ReplayActor:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any) -> None:
        self.buffer = make_replay(
            cfg.replay, obs_shape, np.dtype(obs_dtype), seed=cfg.seed, frame_stack=cfg.atari.enabled
        )

    def add(self, batch: Transitions) -> int:
        self.buffer.add(batch)
        return len(batch)

    def sample_many(self, batch_size: int, count: int, beta: float) -> list[SampledBatch]:
        return self.buffer.sample_many(batch_size, count, beta)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(idx, priorities)

    def size(self) -> int:
        return len(self.buffer)

    def snapshot(self, path: str, compression: Compression) -> dict[str, Any]:
        return write_replay(self.buffer, path, compression)

    def restore(self, path: str) -> dict[str, Any]:
        return read_replay(self.buffer, path)

    def pid(self) -> int:
        return os.getpid()
