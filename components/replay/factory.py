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
