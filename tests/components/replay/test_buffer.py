from __future__ import annotations

import numpy as np
import pytest

from components.replay.batch import Transitions
from components.replay.buffer import PRIORITY_EPS, ReplayBuffer, ReplayConfig, importance_weights


def _transitions(ids: np.ndarray, priority: np.ndarray | None = None) -> Transitions:
    """Transitions whose obs, next_obs and ``step`` all carry their id, so a slot says what it holds."""
    ids = np.asarray(ids)
    b = len(ids)
    obs = np.repeat(ids[:, None], 2, axis=1).astype(np.float32)
    return Transitions(
        obs=obs,
        action=ids % 3,
        reward=ids.astype(np.float32),
        next_obs=obs + 0.5,
        done=ids % 2 == 0,
        n=np.full(b, 3, np.uint8),
        priority=np.zeros(b, np.float32) if priority is None else priority,
        collector=np.zeros(b, np.int16),
        episode=np.zeros(b, np.int64),
        step=ids.astype(np.int32),
        truncated=np.zeros(b, bool),
    )


def _buffer(capacity: int, kind: str = "prioritized", alpha: float = 0.6, seed: int = 0) -> ReplayBuffer:
    cfg = ReplayConfig(capacity=capacity, kind=kind, alpha=alpha)  # type: ignore[arg-type]
    return ReplayBuffer(cfg, (2,), np.dtype(np.float32), seed=seed)


@pytest.mark.parametrize("kind", ["uniform", "prioritized"])
def test_ring_keeps_exactly_the_newest_capacity_transitions(kind):
    buf = _buffer(10, kind)
    next_id = 0
    for b, (cursor, size) in zip([4, 4, 4, 3], [(4, 4), (8, 8), (2, 10), (5, 10)]):
        slots = buf.add(_transitions(np.arange(next_id, next_id + b)))
        next_id += b
        np.testing.assert_array_equal(slots, np.arange(next_id - b, next_id) % 10)
        assert (buf.cursor, buf.size, len(buf)) == (cursor, size, size)
        kept = set(buf.step[: buf.size].tolist())
        assert kept == set(range(max(0, next_id - 10), next_id))
    # Every field moved together: slot i holds id ≡ i (mod 10).
    ids = buf.step.astype(np.int64)
    np.testing.assert_array_equal(ids % 10, np.arange(10))
    np.testing.assert_array_equal(buf.obs[:, 0], ids)
    np.testing.assert_array_equal(buf.next_obs[:, 1], ids + 0.5)
    np.testing.assert_array_equal(buf.reward, ids)
    np.testing.assert_array_equal(buf.action, ids % 3)
    np.testing.assert_array_equal(buf.done, ids % 2 == 0)
    # A batch larger than the capacity: only its newest 10 survive, written from the cursor on.
    buf.add(_transitions(np.arange(15, 40)))
    assert set(buf.step.tolist()) == set(range(30, 40))
    assert (buf.cursor, buf.size) == (5, 10)
    np.testing.assert_array_equal(buf.step[[5, 6, 4]], [30, 31, 39])


def test_inserts_counts_every_transition_added():
    buf = _buffer(10)
    buf.add(_transitions(np.arange(25)))
    assert buf.inserts == 25


def _prioritized_buffer() -> tuple[ReplayBuffer, np.ndarray]:
    """8 transitions with known priorities in a buffer of 12 (4 slots never written)."""
    buf = _buffer(12, alpha=0.6, seed=1)
    p = np.array([0.1, 0.5, 1.0, 2.0, 3.0, 0.05, 4.0, 7.0], dtype=np.float32)
    buf.add(_transitions(np.arange(8), priority=p))
    return buf, p


def test_prioritized_sampling_frequencies_follow_p_to_the_alpha():
    buf, p = _prioritized_buffer()
    pa = (p.astype(np.float64) + PRIORITY_EPS) ** 0.6
    probs = pa / pa.sum()
    calls, batch = 2_000, 64
    draws = calls * batch  # 128,000
    counts = np.zeros(12)
    for _ in range(calls):
        idx, _ = buf.sample_indices(batch, beta=0.4)
        counts += np.bincount(idx, minlength=12)
    assert counts[8:].sum() == 0  # unwritten slots are never drawn
    # Under independent draws count_i ~ Binomial(D, P(i)), sd = sqrt(D·P(1 − P)); a 5-sigma band fails by
    # chance with probability ~6e-7 per slot. Stratified sampling (one draw per slice of [0, Σp)) has a
    # smaller variance than independent draws, so the binomial band is conservative.
    sd = np.sqrt(draws * probs * (1 - probs))
    assert np.all(np.abs(counts[:8] - draws * probs) <= 5 * sd), (counts[:8] / draws, probs)


def test_importance_weights_are_n_p_to_minus_beta_over_the_batch_max():
    buf, p = _prioritized_buffer()
    pa = (p.astype(np.float64) + PRIORITY_EPS) ** 0.6
    probs = pa / pa.sum()
    for beta in (0.4, 1.0):
        batch = buf.sample(32, beta=beta)
        w = (8 * probs[batch.slots]) ** (-beta)
        np.testing.assert_allclose(batch.weight, w / w.max(), rtol=1e-6)
        assert batch.weight.max() == pytest.approx(1.0)
        np.testing.assert_array_equal(batch.obs[:, 0], batch.slots)  # the batch is read from those slots
        np.testing.assert_array_equal(batch.reward, batch.slots)
    assert buf.samples == 64


def test_update_priorities_changes_the_tree_in_place():
    buf, p = _prioritized_buffer()
    current = p.astype(np.float64) + PRIORITY_EPS
    idx = np.array([1, 6, 3])
    td = np.array([-2.5, 0.0, 9.0])
    buf.update_priorities(idx, td)
    current[idx] = np.abs(td) + PRIORITY_EPS
    tree = buf.tree
    assert tree is not None
    np.testing.assert_allclose(tree.get(np.arange(8)), current**0.6, rtol=1e-12)
    assert tree.total == pytest.approx((current**0.6).sum(), rel=1e-12)
    np.testing.assert_allclose(buf.priorities(), current, rtol=1e-9)
    # The largest priority seen (9 + ε) is what a transition sent without one (priority 0) gets.
    assert buf.max_priority == pytest.approx(9.0 + PRIORITY_EPS)
    slot = buf.add(_transitions(np.array([8])))
    assert tree.get(slot)[0] == pytest.approx((9.0 + PRIORITY_EPS) ** 0.6)


def test_uniform_replay_samples_only_filled_slots_with_unit_weights():
    buf = _buffer(100, "uniform")
    buf.add(_transitions(np.arange(7)))
    idx, w = buf.sample_indices(1000, beta=0.4)
    assert set(idx.tolist()) == set(range(7))
    np.testing.assert_array_equal(w, 1.0)
    buf.update_priorities(idx[:3], np.ones(3))  # a no-op, not an error
    np.testing.assert_array_equal(buf.priorities(), np.ones(7))


def test_beta_anneals_linearly_to_one():
    cfg = ReplayConfig(beta_start=0.4, beta_steps=100)
    assert [cfg.beta(s) for s in (0, 50, 100, 1000)] == pytest.approx([0.4, 0.7, 1.0, 1.0])


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(ValueError, match="empty"):
        _buffer(4).sample(2)


def test_importance_weights_formula():
    probs = np.array([0.1, 0.2, 0.4])
    # N·P = [1, 2, 4]; β = 1: [1, 1/2, 1/4], already max 1
    np.testing.assert_allclose(importance_weights(probs, 10, 1.0), np.array([1.0, 0.5, 0.25]))
    # β = 0.5: [1, 2^−½, 4^−½]
    np.testing.assert_allclose(importance_weights(probs, 10, 0.5), np.array([1.0, 2**-0.5, 0.5]), rtol=1e-6)
    # the batch max normalises: N·P = [0.5, 1, 2], β = 1 → [2, 1, 0.5]/2
    np.testing.assert_allclose(importance_weights(probs, 5, 1.0), np.array([1.0, 0.5, 0.25]))
    np.testing.assert_allclose(importance_weights(probs, 10, 0.0), np.ones(3))
