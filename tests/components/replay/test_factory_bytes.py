"""The replay's size estimate (checked before a run opens) is what the buffers allocate, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from components.replay.buffer import ReplayConfig
from components.replay.factory import make_replay, replay_bytes


@pytest.mark.parametrize(
    ("shape", "dtype", "frames", "kind"),
    [
        ((4,), np.float32, False, "prioritized"),  # CartPole
        ((6,), np.float64, False, "uniform"),
        ((10, 10, 4), np.bool_, False, "prioritized"),  # MinAtar-like frames
        ((4, 84, 84), np.uint8, True, "prioritized"),  # Atari: each frame stored once
    ],
)
def test_replay_bytes_is_what_a_full_replay_allocates(shape, dtype, frames, kind):
    cfg = ReplayConfig(capacity=3000, kind=kind)
    replay = make_replay(cfg, shape, dtype, frame_stack=frames)
    assert replay_bytes(cfg, shape, dtype, frames) == replay.nbytes


def test_a_trillion_transitions_are_terabytes():
    cfg = ReplayConfig(capacity=10**12)  # never allocated: the estimate is arithmetic
    assert replay_bytes(cfg, (4,), np.float32) > 7 * 2**40
