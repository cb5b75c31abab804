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


class PixelTransitions(NamedTuple):
    """Transitions of stacked frames with each frame sent once (F = new frames, S = stack).

    A collector in frame mode numbers the frames it produces 0, 1, 2, ... (its *local* ids) and
    sends each once: the reset frame of every episode and the newest frame after every step. The
    transitions name their stacks by those ids, which may point into earlier pushes (the stack's
    history, the n-step delay); the replay maps them to its own frame ids.
    """

    frames: np.ndarray  # [F, H, W] uint8, local ids first_frame, ..., first_frame + F − 1
    first_frame: int  # local id of frames[0]
    collector: int  # which collector sent it (its local ids are its own)
    generation: int  # which incarnation of that collector (a replacement numbers from 0 again)
    transitions: Transitions  # obs and next_obs hold local frame ids [B, S] int64, not pixels

    def __len__(self) -> int:
        return len(self.transitions)
