"""Truncated-BPTT windows over a continuous stream."""

from __future__ import annotations

import numpy as np
import torch

from components.seq.streams import StreamBatcher, eval_windows, lanes


def test_lanes_are_contiguous_slices() -> None:
    data = lanes(np.arange(23), 4)  # 5 per lane, 3 dropped
    assert data.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19]]


def test_windows_continue_each_lane_and_wrap_with_a_fresh_state() -> None:
    ids = np.arange(2 * 11)
    b = StreamBatcher(ids, batch_size=2, bptt=4)
    windows = [b.next() for _ in range(4)]
    assert [w.fresh for w in windows] == [True, False, False, True]
    # Inputs of the first pass cover each lane but its last token; targets are shifted by one.
    inputs = torch.cat([w.inputs for w in windows[:3]], dim=1)
    targets = torch.cat([w.targets for w in windows[:3]], dim=1)
    assert inputs.tolist() == [list(range(0, 10)), list(range(11, 21))]
    assert targets.tolist() == [list(range(1, 11)), list(range(12, 22))]
    assert windows[3].inputs.tolist() == windows[0].inputs.tolist()


def test_eval_windows_score_every_target_once() -> None:
    ids = np.arange(3 * 20)
    windows = eval_windows(ids, 3, 6)
    targets = torch.cat([w.targets for w in windows], dim=1)
    assert targets.tolist() == [list(range(1, 20)), list(range(21, 40)), list(range(41, 60))]
    assert [w.fresh for w in windows] == [True, False, False, False]
