"""The synthetic Markov source: entropy rate against closed forms and against its own samples."""

from __future__ import annotations

import math

import numpy as np

from components.seq.markov import MarkovSource


def h2(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_entropy_rate_of_a_two_state_chain_by_hand() -> None:
    # P = [[0.9, 0.1], [0.2, 0.8]]: π = (2/3, 1/3), H = 2/3·h(0.1) + 1/3·h(0.2).
    src = MarkovSource("ab", 1, np.array([[0.9, 0.1], [0.2, 0.8]]))
    np.testing.assert_allclose(src.stationary(), [2 / 3, 1 / 3], atol=1e-9)
    assert abs(src.entropy_rate() - (2 / 3 * h2(0.1) + 1 / 3 * h2(0.2))) < 1e-9


def test_uniform_rows_give_log2_k_and_deterministic_rows_give_zero() -> None:
    uniform = MarkovSource("abcde", 2, np.full((25, 5), 0.2))
    assert abs(uniform.entropy_rate() - math.log2(5)) < 1e-9
    # Second order, deterministic: next = (previous two summed) mod 3.
    probs = np.full((9, 3), 1e-300)
    for s in range(9):
        probs[s, (s // 3 + s % 3) % 3] = 1.0
    det = MarkovSource("abc", 2, probs / probs.sum(1, keepdims=True))
    assert det.entropy_rate() < 1e-9


def test_samples_follow_the_table_and_their_log_loss_is_the_entropy_rate() -> None:
    src = MarkovSource.random(alphabet_size=4, order=2, concentration=0.5, seed=3)
    ids = src.sample(200_000, seed=4)
    assert set(np.unique(ids)) <= set(range(4))
    # Law of large numbers: -1/N Σ log2 P(x_t | context) → H (std of the mean here is ~0.003).
    assert abs(src.log_loss_bits(ids) - src.entropy_rate()) < 0.015
    # Empirical transition frequencies of the most visited context match its row.
    ctx = src.contexts(ids)
    s = int(np.bincount(ctx).argmax())
    freq = np.bincount(ids[2:][ctx == s], minlength=4) / (ctx == s).sum()
    np.testing.assert_allclose(freq, src.probs[s], atol=0.02)


def test_contexts_read_the_previous_k_symbols_as_a_base_k_number() -> None:
    src = MarkovSource("abc", 2, np.full((9, 3), 1 / 3))
    ids = np.array([2, 1, 0, 2])
    assert src.contexts(ids).tolist() == [2 * 3 + 1, 1 * 3 + 0]
    assert src.next_context(2 * 3 + 1, 0) == 1 * 3 + 0


def test_same_seed_same_source() -> None:
    a = MarkovSource.random(5, 3, 0.5, seed=1)
    b = MarkovSource.random(5, 3, 0.5, seed=1)
    np.testing.assert_array_equal(a.probs, b.probs)
    np.testing.assert_array_equal(a.sample(1000, 2), b.sample(1000, 2))
