"""The types the DQN loop, its wirings and its checkpoints share: what a wiring and a learner offer
the loop, the counters a checkpoint keeps, how a run is controlled, and what it returns.

Kept apart from the loop itself (``pipelines/dqn/loop.py``) so that checkpoints and wirings need
only these definitions, not the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from components.replay.batch import SampledBatch
from components.replay.rate_limiter import SamplesPerInsert
from components.replay.snapshot import Compression
from components.rl.dqn.collector import EpisodeStats


class Wiring(Protocol):
    """Where the collectors and the replay live: in this process (``LocalWiring``) or on Ray
    (``RayWiring``). The loop only asks through this surface."""

    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]: ...
    def sample(self, count: int, beta: float) -> list[SampledBatch]: ...
    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None: ...
    def publish(self, weights: Any) -> None: ...
    def idle(self) -> None: ...
    def replay_size(self) -> int: ...
    def stop(self) -> None: ...
    def save_replay(self, path: Path, compression: Compression) -> dict[str, Any]: ...
    def load_replay(self, path: Path) -> dict[str, Any]: ...
    def set_snapshot(self, path: Path, inserts: int) -> None: ...
    def collector_env_steps(self) -> list[int]: ...
    def restore_collectors(self, env_steps: list[int]) -> None: ...
    def fault_counts(self) -> dict[str, float]: ...
    def restore_fault_counts(self, counts: dict[str, float]) -> None: ...


class LoopLearner(Protocol):
    """The learner as the loop drives it: in the driver (``InProcessLearner``) or in an actor
    (``RemoteLearner``)."""

    @property
    def steps(self) -> int: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def online(self) -> nn.Module: ...
    def get_weights(self) -> np.ndarray: ...
    def train(self, count: int, beta: float) -> list[dict[str, float]]: ...
    def drain(self) -> None: ...
    def stop(self) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class LoopState:
    """The loop's counters, as a checkpoint keeps them so that a resumed run continues them."""

    env_steps: int = 0
    episodes: int = 0
    inserts: int = 0  # the samples-per-insert limiter's counts
    samples: int = 0
    next_eval: int = 0
    best_eval: float = -math.inf
    wall_s: float = 0.0  # time since the first session started, start-ups included (metrics' wall_s)
    collector_env_steps: list[int] = field(default_factory=list)
    train_s: float | None = None  # time in the loop, all sessions: what max_time_s counts (None: old)
    faults: dict[str, float] = field(default_factory=dict)  # collector/replay restarts, lost transitions


@dataclass
class LoopControl:
    """Resuming, checkpointing and stopping; the defaults run the plain loop."""

    start: LoopState | None = None
    checkpoint_every_s: float = 0.0  # 0 = the loop never checkpoints by itself
    checkpoint: Callable[[LoopState], None] | None = None
    stop_requested: Callable[[], bool] = lambda: False


@dataclass
class LoopResult:
    env_steps: int = 0
    episodes: int = 0
    learner_steps: int = 0
    wall_s: float = 0.0
    best_eval: float = -np.inf
    last_eval: float = float("nan")
    solved_at_s: float | None = None
    solved_at_env_steps: int | None = None
    train_return: float = float("nan")  # rolling-20 mean of the training episodes, at the end
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    interrupted: bool = False  # stopped by a stop request (a signal), not by a budget
    state: LoopState | None = None  # the counters at the end, for the exit checkpoint
