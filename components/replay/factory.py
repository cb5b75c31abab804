"""Which replay a DQN run gets: stacked uint8 frames are stored once per frame, anything else whole."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.pixel_buffer import PixelReplayBuffer

Replay = ReplayBuffer | PixelReplayBuffer


def make_replay(
    cfg: ReplayConfig, obs_shape: tuple[int, ...], obs_dtype: Any, seed: int = 0, frame_stack: bool = False
) -> Replay:
    """A :class:`PixelReplayBuffer` when ``frame_stack`` (observations are [S, H, W] uint8 stacks that
    shift by one frame a step, as ``atari.enabled`` makes them), else a :class:`ReplayBuffer`.

    The collectors must agree: ``Collector`` sends frames exactly when ``atari.enabled``, so pass
    ``frame_stack=cfg.atari.enabled``.
    """
    dtype = np.dtype(obs_dtype)
    if not frame_stack:
        return ReplayBuffer(cfg, tuple(obs_shape), dtype, seed=seed)
    if len(obs_shape) != 3 or dtype != np.uint8:
        raise ValueError(f"a frame-stack replay needs [S, H, W] uint8 observations, got {obs_shape} {dtype}")
    return PixelReplayBuffer(cfg, int(obs_shape[0]), tuple(obs_shape[1:]), seed=seed)


def replay_bytes(
    cfg: ReplayConfig, obs_shape: tuple[int, ...], obs_dtype: Any, frame_stack: bool = False
) -> int:
    """Bytes a full replay of ``cfg.capacity`` holds (what :func:`make_replay` would allocate): the
    observations (twice, or each frame once with its ids for frame stacks), the per-transition columns
    (action, reward, flags, n, collector, episode, step: 29 bytes) and the sum tree (8 bytes a leaf, 2×
    the next power of two)."""
    cap = int(cfg.capacity)
    columns = 8 + 4 + 1 + 1 + 1 + 2 + 8 + 4
    tree = 2 * 8 * (1 << max(0, (cap - 1).bit_length())) if cfg.kind == "prioritized" else 0
    if frame_stack:
        stack, *frame = obs_shape
        per = int(np.prod(frame)) + 8 + 3 * 8 * int(stack) + 1  # frame, its id, obs/next/dependent ids
    else:
        per = 2 * int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
    return cap * (per + columns) + tree
