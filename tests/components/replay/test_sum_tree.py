from __future__ import annotations

import numpy as np
import pytest

from components.replay.sum_tree import SumTree


def _brute_force_find(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The leaf i with Σ_{j<i} p_j ≤ u < Σ_{j≤i} p_j, by a plain cumulative sum."""
    return np.searchsorted(np.cumsum(p), u, side="right")


@pytest.mark.parametrize("capacity", [1, 2, 5, 8, 13, 64, 100, 1000])
def test_find_matches_brute_force_cumulative_search(capacity):
    rng = np.random.default_rng(capacity)
    p = rng.random(capacity) * 10.0
    p[rng.random(capacity) < 0.2] = 0.0  # zero-priority leaves must never be found
    p[0] = max(p[0], 0.5)
    tree = SumTree(capacity)
    tree.set(np.arange(capacity), p)
    assert tree.total == pytest.approx(p.sum(), rel=1e-12)
    u = rng.uniform(0.0, tree.total, 5000)
    # Keep u away from the bucket edges, where the tree's and cumsum's round-off may disagree by an ulp.
    edges = np.cumsum(p)
    gap = np.min(np.abs(u[:, None] - edges[None, :]), axis=1)
    u = u[gap > 1e-9 * tree.total]
    found = tree.find(u)
    np.testing.assert_array_equal(found, _brute_force_find(p, u))
    assert np.all(p[found] > 0)


def test_inner_nodes_are_sums_of_children_and_root_is_the_total():
    tree = SumTree(6)  # 8 leaves, the last two padding
    tree.set(np.array([0, 1, 2, 3, 4, 5]), np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    tree.set(np.array([2, 2]), np.array([10.0, 0.5]))  # repeated index: the last write wins
    np.testing.assert_array_equal(tree.get(np.arange(6)), [1, 2, 0.5, 4, 5, 6])
    # level above the leaves: (1+2), (0.5+4), (5+6), (0+0); then 7.5, 11; root 18.5
    np.testing.assert_array_equal(tree.tree[4:8], [3.0, 4.5, 11.0, 0.0])
    np.testing.assert_array_equal(tree.tree[2:4], [7.5, 11.0])
    assert tree.total == 18.5


def test_stratified_sample_puts_one_draw_in_each_slice():
    tree = SumTree(4)
    tree.set(np.arange(4), np.array([1.0, 1.0, 1.0, 1.0]))
    # 4 equal slices of [0, 4) map one-to-one onto the 4 equal leaves, whatever the jitter.
    for seed in range(20):
        np.testing.assert_array_equal(tree.sample(4, np.random.default_rng(seed)), [0, 1, 2, 3])


def test_rejects_bad_priorities_and_empty_trees():
    tree = SumTree(4)
    with pytest.raises(ValueError, match="sum to 0"):
        tree.sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        tree.set(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="finite"):
        tree.set(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)


def test_find_never_returns_an_empty_leaf_of_a_partly_filled_tree():
    # Found by a seeded search: 24 of 84 slots filled; the root's round-off exceeds the filled leaves'
    # mass, so u = nextafter(total, 0) walks right into leaf 31 (priority 0). A ReplayBuffer sampling
    # it returns an unwritten slot whose IS weight is (N·0)^(−β) = inf, and NaN after normalising.
    rng = np.random.default_rng(352)
    capacity = int(rng.integers(5, 300))
    filled = int(rng.integers(1, capacity))
    p = rng.random(filled) ** 3 * 10 ** rng.uniform(-3, 3, filled)
    tree = SumTree(capacity)
    tree.set(np.arange(filled), p)
    leaf = int(tree.find(np.array([np.nextafter(tree.total, 0)]))[0])
    assert leaf < filled and tree.get(np.array([leaf]))[0] > 0
