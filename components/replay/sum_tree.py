"""A vectorised sum tree: O(log N) proportional sampling and priority updates, batched in numpy.

Leaves hold priorities p_i^α; every inner node holds the sum of its two children, so the root is
Σp and a prefix-sum search from the root finds the leaf whose cumulative range contains u in
⌈log2 N⌉ steps. Both the search and the update run level by level over the whole batch at once,
which is what makes a pure-numpy tree fast enough to serve a learner (one numpy call per level,
~20 levels for a million leaves, instead of a Python loop per item).
"""

from __future__ import annotations

import numpy as np


class SumTree:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.depth = max(1, int(np.ceil(np.log2(capacity))))
        self.n_leaves = 1 << self.depth
        self.tree = np.zeros(2 * self.n_leaves, dtype=np.float64)  # index 1 is the root

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.tree[self.n_leaves + np.asarray(idx)]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``idx`` to ``values`` (the last write wins for repeated indices) and re-sum upwards."""
        idx = np.asarray(idx, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ValueError("priorities must be finite and >= 0")
        nodes = idx + self.n_leaves
        self.tree[nodes] = values
        nodes = _sorted_unique(np.sort(nodes) >> 1)
        tree = self.tree
        while True:
            left = nodes << 1
            tree[nodes] = tree[left] + tree[left + 1]
            if nodes[0] == 1:
                break
            # Parents of a sorted array are sorted: dropping repeats needs no new sort.
            nodes = _sorted_unique(nodes >> 1)

    def find(self, u: np.ndarray) -> np.ndarray:
        """Leaf indices whose cumulative range [Σ_{j<i} p_j, Σ_{j≤i} p_j) contains each u in [0, total)."""
        u_orig = np.asarray(u, dtype=np.float64)
        u = u_orig.copy()
        tree = self.tree
        nodes = np.ones(u.shape[0], dtype=np.int64)
        for _ in range(self.depth):
            left_idx = nodes << 1
            left = tree[left_idx]
            go_right = u >= left
            u -= np.where(go_right, left, 0.0)
            nodes = left_idx + go_right
        leaves = nodes - self.n_leaves
        # Round-off in the inner sums can send a u just below the total into leaves that were never
        # written (priority 0). Rare: redo those few with a descent that never enters an empty subtree.
        empty = tree[nodes] <= 0
        if empty.any():
            leaves[empty] = self._find_safe(u_orig[empty])
        return leaves

    def _find_safe(self, u: np.ndarray) -> np.ndarray:
        u = u.copy()
        tree = self.tree
        nodes = np.ones(u.shape[0], dtype=np.int64)
        for _ in range(self.depth):
            left = tree[2 * nodes]
            go_right = (u >= left) & (tree[2 * nodes + 1] > 0)
            u -= left * go_right
            nodes = 2 * nodes + go_right
        return nodes - self.n_leaves

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified proportional sampling: one u in each of ``batch_size`` equal slices of [0, total)."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose priorities sum to 0")
        u = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.find(np.minimum(u, np.nextafter(total, 0)))


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique for an already sorted array, without the sort."""
    if a.size <= 1:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]
