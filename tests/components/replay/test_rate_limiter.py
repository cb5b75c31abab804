from __future__ import annotations

import pytest

from components.replay.rate_limiter import SamplesPerInsert


def test_reverb_contract_worked_by_hand():
    """spi = 2, min size 10, error buffer 5: error = (inserts − 10)·2 − samples must stay in [−5, 5].

    This is Reverb's SampleToInsertRatio (diff = inserts·spi − samples against offset ± error_buffer,
    offset = spi·min_size), with the offset folded into ``error``.
    """
    lim = SamplesPerInsert(samples_per_insert=2.0, min_size_to_sample=10, error_buffer=5.0)
    # Warm-up: nothing may be sampled below the min size; inserts up to the min size are free.
    assert not lim.can_sample(1)
    assert lim.can_insert(10)  # 0 + 10 ≤ 10
    assert lim.can_insert(12)  # error after = (12 − 10)·2 − 0 = 4 ≤ 5
    assert not lim.can_insert(13)  # 6 > 5
    lim.inserts = 9
    assert not lim.can_sample(1)
    lim.inserts = 10  # error = 0
    assert lim.error == 0.0
    assert lim.can_sample(5)  # 0 − 5 = −5 ≥ −5: exactly at the edge
    assert not lim.can_sample(6)  # −6 < −5
    assert lim.can_insert(2)  # 0 + 2·2 = 4 ≤ 5
    assert not lim.can_insert(3)  # 6 > 5
    lim.samples = 5  # error = −5: the learner is at its limit, the collectors may catch up
    assert lim.error == -5.0
    assert not lim.can_sample(1)
    assert lim.can_insert(5)  # −5 + 10 = 5 ≤ 5
    assert not lim.can_insert(6)  # 7 > 5
    lim.inserts = 12  # error = 2·2 − 5 = −1
    assert lim.error == -1.0
    assert lim.can_sample(4) and not lim.can_sample(5)
    assert lim.observed_ratio() == pytest.approx(5 / 2)


def test_zero_error_buffer_enforces_the_ratio_exactly():
    lim = SamplesPerInsert(samples_per_insert=4.0, min_size_to_sample=0, error_buffer=0.0)
    assert lim.can_insert(0) and not lim.can_sample(1)
    lim.inserts = 3  # 12 samples owed
    assert lim.can_sample(12) and not lim.can_sample(13)
    assert not lim.can_insert(1)  # the learner is 12 samples behind
    lim.samples = 12
    assert lim.can_insert(0) and not lim.can_insert(1)  # insert 1 → error 4 > 0
    assert lim.observed_ratio() == pytest.approx(4.0)
