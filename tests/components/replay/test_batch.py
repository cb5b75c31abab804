from __future__ import annotations

import numpy as np

from components.replay.batch import SampledBatch, Transitions


def test_transitions_length_is_the_batch_size_and_fields_keep_their_order():
    b = 5
    z = np.zeros(b)
    t = Transitions(np.zeros((b, 4)), np.arange(b), z, np.ones((b, 4)), z.astype(bool), z, z, z, z, z, z)
    assert len(t) == b
    assert Transitions._fields[:5] == ("obs", "action", "reward", "next_obs", "done")
    assert t.next_obs.sum() == 4 * b and t.action[-1] == b - 1
    assert SampledBatch._fields == ("obs", "action", "reward", "next_obs", "done", "n", "slots", "weight")
