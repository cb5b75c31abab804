"""A fixed-capacity replay buffer: preallocated numpy ring, uniform or proportional prioritized sampling.

Prioritized replay (Schaul et al. 2016): P(i) = p_i^α / Σ_k p_k^α, sampled with a sum tree; the
importance-sampling weight w_i = (N·P(i))^(−β) corrects the bias, normalised by the batch's largest
weight so that updates are only ever scaled down (as Dopamine and most Ape-X implementations do;
normalising by the buffer-wide maximum would need a min-tree and gives the same ordering). New
transitions get the collector's initial priority |δ| when it sent one, else the largest priority seen
so far, so that every new transition is sampled soon.

:class:`ReplayBase` holds what every replay shares (the per-slot columns other than observations,
the sum tree, the counters, the sampling); :class:`ReplayBuffer` stores whole observations in a
ring, ``PixelReplayBuffer`` (``pixel_buffer.py``) stores stacked frames once each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from components.config import param
from components.replay.batch import PixelTransitions, SampledBatch, Transitions
from components.replay.sum_tree import SumTree

PRIORITY_EPS = 1e-6


@dataclass(frozen=True)
class ReplayConfig:
    """The shared replay buffer."""

    capacity: int = param(100_000, "transitions kept; the oldest are overwritten", ge=1)
    kind: Literal["uniform", "prioritized"] = param("prioritized", "sampling distribution")
    alpha: float = param(0.6, "priority exponent α (0 = uniform)", ge=0.0)
    beta_start: float = param(0.4, "importance-sampling exponent β at the first learner step", ge=0.0, le=1.0)
    beta_steps: int = param(20_000, "learner steps over which β anneals linearly to 1", ge=1)
    min_size: int = param(1_000, "transitions before learning starts", ge=1)
    samples_per_insert: float = param(8.0, "target learner samples per inserted transition", gt=0.0)
    spi_tolerance: float = param(
        20_000.0, "how far (in samples) the ratio may drift before one side waits", ge=0.0
    )

    def beta(self, learner_step: int) -> float:
        """β at ``learner_step``: linear from ``beta_start`` to 1 over ``beta_steps``, then 1."""
        frac = min(1.0, learner_step / self.beta_steps)
        return self.beta_start + frac * (1.0 - self.beta_start)


def importance_weights(probs: np.ndarray, size: int, beta: float) -> np.ndarray:
    """w_i = (N·P(i))^(−β) / max_j w_j over the batch (float32)."""
    w = (size * probs) ** (-beta)
    return (w / w.max()).astype(np.float32)


class ReplayBase(ABC):
    """Slots of transitions minus their observations, sampled uniformly or by priority.

    A subclass decides where observations live (``_observations``), which slot a transition gets
    (its ``add``) and which slots may be drawn uniformly (``_uniform``); priorities, importance
    weights and counters are the same for all, so they are written once, here.
    """

    def __init__(self, cfg: ReplayConfig, seed: int = 0) -> None:
        self.cfg = cfg
        cap = cfg.capacity
        self.action = np.zeros(cap, dtype=np.int64)
        self.reward = np.zeros(cap, dtype=np.float32)
        self.done = np.zeros(cap, dtype=bool)
        self.truncated = np.zeros(cap, dtype=bool)
        self.n = np.zeros(cap, dtype=np.uint8)
        self.collector = np.zeros(cap, dtype=np.int16)
        self.episode = np.zeros(cap, dtype=np.int64)
        self.step = np.zeros(cap, dtype=np.int32)
        self.tree = SumTree(cap) if cfg.kind == "prioritized" else None
        self.max_priority = 1.0
        self.size = 0  # transitions that may be sampled
        self.inserts = 0  # total ever added
        self.samples = 0  # total ever sampled
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    @abstractmethod
    def _observations(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [B, *obs_shape] and next_obs [B, *obs_shape] of slots ``idx``."""

    @abstractmethod
    def _uniform(self, batch_size: int) -> np.ndarray:
        """``batch_size`` slots drawn uniformly from those that hold a transition."""

    def _store(self, idx: np.ndarray, batch: Transitions) -> None:
        """Write everything but the observations of ``batch`` into slots ``idx``, with initial priorities."""
        self.action[idx] = batch.action
        self.reward[idx] = batch.reward
        self.done[idx] = batch.done
        self.truncated[idx] = batch.truncated
        self.n[idx] = batch.n
        self.collector[idx] = batch.collector
        self.episode[idx] = batch.episode
        self.step[idx] = batch.step
        if self.tree is not None and len(idx):
            p = np.asarray(batch.priority, dtype=np.float64)
            p = np.where(p > 0, p + PRIORITY_EPS, self.max_priority)
            self.max_priority = max(self.max_priority, float(p.max()))
            self.tree.set(idx, p**self.cfg.alpha)

    def sample_indices(self, batch_size: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """Slots and IS weights: uniform over the filled slots, or proportional to p^α."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if self.tree is None:
            return self._uniform(batch_size), np.ones(batch_size, dtype=np.float32)
        idx = self.tree.sample(batch_size, self.rng)
        return idx, importance_weights(self.tree.get(idx) / self.tree.total, self.size, beta)

    def sample(self, batch_size: int, beta: float = 1.0) -> SampledBatch:
        idx, weights = self.sample_indices(batch_size, beta)
        self.samples += batch_size
        obs, next_obs = self._observations(idx)
        return SampledBatch(
            obs,
            self.action[idx],
            self.reward[idx],
            next_obs,
            self.done[idx],
            self.n[idx],
            idx,
            weights,
        )

    def sample_many(self, batch_size: int, count: int, beta: float = 1.0) -> list[SampledBatch]:
        """``count`` batches in one call (one actor round trip serves several learner steps)."""
        return [self.sample(batch_size, beta) for _ in range(count)]

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        """Set p_i = |δ_i| + ε for the sampled slots (in place in the sum tree)."""
        if self.tree is None or len(idx) == 0:
            return
        p = np.abs(np.asarray(priorities, dtype=np.float64)) + PRIORITY_EPS
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(np.asarray(idx), p**self.cfg.alpha)

    def priorities(self, slots: np.ndarray | None = None) -> np.ndarray:
        """p_i (not raised to α) of ``slots`` (default: the first ``size``), for snapshots and export."""
        slots = np.arange(self.size) if slots is None else np.asarray(slots)
        if self.tree is None:
            return np.ones(len(slots))
        return self.tree.get(slots) ** (1.0 / self.cfg.alpha if self.cfg.alpha > 0 else 1.0)

    def stats(self) -> dict[str, float]:
        return {
            "replay_size": float(self.size),
            "replay_inserts": float(self.inserts),
            "replay_samples": float(self.samples),
        }


class ReplayBuffer(ReplayBase):
    """Ring storage of :class:`Transitions` with vectorised ``add``, ``sample`` and ``update_priorities``."""

    def __init__(
        self, cfg: ReplayConfig, obs_shape: tuple[int, ...], obs_dtype: np.dtype, seed: int = 0
    ) -> None:
        super().__init__(cfg, seed)
        self.obs = np.zeros((cfg.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((cfg.capacity, *obs_shape), dtype=obs_dtype)
        self.cursor = 0  # next slot to write

    @property
    def nbytes(self) -> int:
        """Bytes of everything kept per slot: observations, columns, sum tree."""
        columns = (self.action, self.reward, self.done, self.truncated, self.n, self.collector)
        tree = self.tree.tree.nbytes if self.tree is not None else 0
        arrays = (self.obs, self.next_obs, *columns, self.episode, self.step)
        return sum(a.nbytes for a in arrays) + tree

    def add(self, batch: Transitions) -> np.ndarray:
        """Write a batch at the ring's cursor (wrapping around); returns the slots written."""
        if isinstance(batch, PixelTransitions):
            raise TypeError(
                "this collector sends each frame once (atari.enabled): build the replay with "
                "make_replay(..., frame_stack=cfg.atari.enabled), which gives a PixelReplayBuffer"
            )
        b = added = len(batch)
        if b == 0:
            return np.zeros(0, dtype=np.int64)
        if b > self.cfg.capacity:  # only the newest `capacity` survive anyway
            batch = Transitions(*(x[-self.cfg.capacity :] for x in batch))
            b = self.cfg.capacity
        idx = (self.cursor + np.arange(b)) % self.cfg.capacity
        self.obs[idx] = batch.obs
        self.next_obs[idx] = batch.next_obs
        self._store(idx, batch)
        self.cursor = int((self.cursor + b) % self.cfg.capacity)
        self.size = min(self.size + b, self.cfg.capacity)
        self.inserts += added
        return idx

    def _observations(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.obs[idx], self.next_obs[idx]

    def _uniform(self, batch_size: int) -> np.ndarray:
        return self.rng.integers(0, self.size, batch_size)
