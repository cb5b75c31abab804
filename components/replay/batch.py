"""The typed containers that move between collectors, the replay and the learner."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Transitions(NamedTuple):
    """n-step transitions as collectors emit them and the replay stores them (B = batch)."""

    obs: np.ndarray  # [B, *obs_shape]
    action: np.ndarray  # [B] int64
    reward: np.ndarray  # [B] float32, the discounted n-step return Σ_k γ^k r_{t+k}
    next_obs: np.ndarray  # [B, *obs_shape], the observation n steps later (or at the episode's end)
    done: np.ndarray  # [B] bool, terminated inside the window: no bootstrap
    n: np.ndarray  # [B] uint8, steps actually summed (< n_step when the episode ended or was truncated)
    priority: np.ndarray  # [B] float32, initial priority (|TD error| from the collector), or 0 for "max"
    collector: np.ndarray  # [B] int16, which collector produced it
    episode: np.ndarray  # [B] int64, episode id within that collector
    step: np.ndarray  # [B] int32, step of obs within its episode
    truncated: np.ndarray  # [B] bool, the window ended in a time-limit truncation (bootstraps)

    def __len__(self) -> int:
        return int(self.action.shape[0])


class SampledBatch(NamedTuple):
    """What the learner trains on."""

    obs: np.ndarray  # [B, *obs_shape]
    action: np.ndarray  # [B]
    reward: np.ndarray  # [B]
    next_obs: np.ndarray  # [B, *obs_shape]
    done: np.ndarray  # [B]
    n: np.ndarray  # [B]
    slots: np.ndarray  # [B] slots in the replay, for update_priorities
    weight: np.ndarray  # [B] importance-sampling weights (all 1 for uniform replay)
