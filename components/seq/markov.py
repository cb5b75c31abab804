"""A synthetic text source with a known entropy rate: a random k-th order Markov chain.

Why: on real text nobody knows the best achievable bits per character, so a model's bpc cannot be
judged in absolute terms. Here the next character depends only on the previous ``order`` ones,
through a transition table drawn once from a symmetric Dirichlet(α) (small α, peaked rows, lower
entropy). The entropy rate is

    H = Σ_s π(s) · H(P(· | s))   bits per character,

with π the stationary distribution over the K^k contexts. No predictor can do better than H on
average, and a model that has learned the table reaches it; the trainer reports both.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class MarkovSource:
    """Transition table ``probs`` [K^k, K]: row s is P(next | context s), s read as a base-K number."""

    alphabet: str
    order: int
    probs: np.ndarray

    @classmethod
    def random(cls, alphabet_size: int, order: int, concentration: float, seed: int) -> MarkovSource:
        if not 2 <= alphabet_size <= len(LETTERS):
            raise ValueError(f"alphabet_size must be in [2, {len(LETTERS)}], got {alphabet_size}")
        rng = np.random.default_rng(seed)
        probs = rng.dirichlet(np.full(alphabet_size, concentration), size=alphabet_size**order)
        probs = np.maximum(probs, 1e-12)  # tiny Dirichlet draws can underflow to exactly 0
        return cls(LETTERS[:alphabet_size], order, probs / probs.sum(axis=1, keepdims=True))

    @property
    def k(self) -> int:
        return len(self.alphabet)

    def next_context(self, s: int, symbol: int) -> int:
        """Drop the oldest symbol of context s, append ``symbol``."""
        return (s * self.k + symbol) % self.k**self.order

    def stationary(self, tol: float = 1e-13, max_iter: int = 100_000) -> np.ndarray:
        """π over contexts, by power iteration on the context chain (each context has K successors)."""
        n = self.k**self.order
        succ = (np.arange(n)[:, None] * self.k + np.arange(self.k)[None, :]) % n  # [n, K]
        pi = np.full(n, 1.0 / n)
        for _ in range(max_iter):
            new = np.zeros(n)
            np.add.at(new, succ.ravel(), (pi[:, None] * self.probs).ravel())
            # Average with the old vector: a lazy chain has the same π and cannot oscillate.
            new = 0.5 * (new + pi)
            if np.abs(new - pi).sum() < tol:
                return new
            pi = new
        return pi

    def entropy_rate(self) -> float:
        """H in bits per character."""
        row_h = -(self.probs * np.log2(self.probs)).sum(axis=1)
        return float(self.stationary() @ row_h)

    def sample(self, length: int, seed: int) -> np.ndarray:
        """``length`` symbol ids, started from the stationary distribution (no burn-in transient)."""
        rng = np.random.default_rng(seed)
        s = int(rng.choice(self.k**self.order, p=self.stationary()))
        cum = np.cumsum(self.probs, axis=1).tolist()  # plain lists: bisect beats numpy per element
        u = rng.random(length).tolist()
        n_ctx, last = self.k**self.order, self.k - 1
        out = [0] * length
        for t in range(length):
            sym = min(bisect.bisect_right(cum[s], u[t]), last)
            out[t] = sym
            s = (s * self.k + sym) % n_ctx
        return np.asarray(out, dtype=np.int64)

    def contexts(self, ids: np.ndarray) -> np.ndarray:
        """The context index before each of ``ids[order:]``: Σ_j ids[t-k+j]·K^(k-1-j)."""
        n = len(ids) - self.order
        ctx = np.zeros(max(n, 0), dtype=np.int64)
        for j in range(self.order):
            ctx = ctx * self.k + ids[j : j + n]
        return ctx

    def log_loss_bits(self, ids: np.ndarray) -> float:
        """The true model's mean -log2 P(x_t | previous k) over ``ids[order:]``: H measured on this sample."""
        ctx = self.contexts(ids)
        return float(-np.log2(self.probs[ctx, ids[self.order :]]).mean())

    def text(self, ids: np.ndarray) -> str:
        return "".join(self.alphabet[int(i)] for i in ids)
