from __future__ import annotations

import numpy as np

from components.replay.frame_ids import FrameIdMap


def test_two_collectors_interleaved_map_by_their_own_segments_by_hand():
    m = FrameIdMap()
    m.register((0, 0), 0, 0, 3)  # collector 0: local 0–2 → replay 0–2
    m.register((1, 0), 0, 3, 4)  # collector 1: local 0–3 → replay 3–6
    m.register((0, 0), 3, 7, 2)  # collector 0: local 3–4 → replay 7–8
    np.testing.assert_array_equal(
        m.lookup((0, 0), [[0, 1, 2, 3], [2, 2, 3, 4]]), [[0, 1, 2, 7], [2, 2, 7, 8]]
    )
    np.testing.assert_array_equal(m.lookup((1, 0), [0, 3]), [3, 6])
    np.testing.assert_array_equal(m.lookup((1, 0), [4]), [-1])  # not sent yet
    np.testing.assert_array_equal(m.lookup((2, 0), [0]), [-1])  # an unknown collector


def test_a_lost_push_leaves_a_gap_a_replacement_has_its_own_key_and_a_fresh_collector_restarts_one():
    m = FrameIdMap()
    m.register((0, 0), 0, 0, 5)
    m.register((0, 0), 9, 5, 2)  # local 5–8 went to a replay that died: unknown
    np.testing.assert_array_equal(m.lookup((0, 0), [4, 5, 8, 9, 10]), [4, -1, -1, 5, 6])
    m.register((0, 1), 0, 7, 3)  # generation 1 numbers from 0 again, beside generation 0
    np.testing.assert_array_equal(m.lookup((0, 1), [0, 2]), [7, 9])
    np.testing.assert_array_equal(m.lookup((0, 0), [0]), [0])
    m.register((0, 0), 0, 10, 2)  # ids went back under (0, 0): a new collector after a resume
    np.testing.assert_array_equal(m.lookup((0, 0), [0, 1, 4, 9]), [10, 11, -1, -1])


def test_segments_are_forgotten_once_their_frames_left_the_ring_and_the_state_round_trips():
    m = FrameIdMap()
    for k in range(4):
        m.register((0, 0), 10 * k, 20 * k, 10)  # replay ids 0–9, 20–29, 40–49, 60–69
        m.register((1, 0), 10 * k, 20 * k + 10, 10)
    m.prune(oldest=30)  # frames below 30 are gone
    np.testing.assert_array_equal(m.lookup((0, 0), [5, 15, 25]), [-1, -1, 45])
    np.testing.assert_array_equal(m.lookup((1, 0), [9, 15]), [-1, 35])  # 30–39 is still whole
    back = FrameIdMap()
    back.load(m.state())
    assert back.segments == m.segments
    m.prune(oldest=1000)
    assert m.segments == {}
