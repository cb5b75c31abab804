"""n-step accumulation per environment, correct at episode ends and time-limit truncations.

For each env a window of the last ≤ n steps is kept. When it holds n steps it emits
(s_t, a_t, R = Σ_{k<n} γ^k r_{t+k}, s_{t+n}, done=False, n) and slides. When the episode ends every
pending step is flushed with the rewards that remain: after a termination with done=True (the
target does not bootstrap), after a truncation with done=False and ``truncated=True`` (the target
bootstraps from the state where the time limit cut the episode, which gymnasium returns as the
final observation).
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np


class Pending(NamedTuple):
    obs: Any
    action: int
    reward: float
    step: int
    q_taken: float  # the collector's Q(s, a) when it acted, for the initial priority
    episode: int = 0


class Emitted(NamedTuple):
    obs: Any
    action: int
    ret: float
    next_obs: Any
    done: bool
    truncated: bool
    n: int
    step: int
    q_taken: float
    env: int
    episode: int


class NStepAccumulator:
    def __init__(self, num_envs: int, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.gamma = n, gamma
        self.windows: list[deque[Pending]] = [deque() for _ in range(num_envs)]
        self.discounts = gamma ** np.arange(n)

    def _emit(self, env: int, next_obs: Any, done: bool, truncated: bool) -> Emitted:
        w = self.windows[env]
        rewards = np.fromiter((p.reward for p in w), dtype=np.float64, count=len(w))
        first = w[0]
        ret = float(rewards @ self.discounts[: len(w)])
        return Emitted(
            first.obs,
            first.action,
            ret,
            next_obs,
            done,
            truncated,
            len(w),
            first.step,
            first.q_taken,
            env,
            first.episode,
        )

    def push(
        self, env: int, item: Pending, next_obs: Any, terminated: bool, truncated: bool
    ) -> list[Emitted]:
        """Add one step of ``env``; return the transitions that became complete."""
        w = self.windows[env]
        w.append(item)
        out = []
        if terminated or truncated:
            while w:
                out.append(self._emit(env, next_obs, done=terminated, truncated=truncated and not terminated))
                w.popleft()
        elif len(w) == self.n:
            out.append(self._emit(env, next_obs, done=False, truncated=False))
            w.popleft()
        return out


class Windows(NamedTuple):
    """The n-step windows a segment completed, as indices into the segment's rows (carry first)."""

    start: np.ndarray  # [K] row of s_t
    env: np.ndarray  # [K]
    end: np.ndarray  # [K] row of the window's last step (its next observation is s_{t+n} or the final one)
    ret: np.ndarray  # [K] float64, Σ_k γ^k r_{t+k}
    n: np.ndarray  # [K] steps in the window
    done: np.ndarray  # [K] terminated at ``end``: no bootstrap
    truncated: np.ndarray  # [K] cut by a time limit at ``end``: bootstraps from the final observation


class SegmentNStep:
    """The windows of :class:`NStepAccumulator`, computed for all envs and a whole segment of steps at once.

    A collector steps its E envs T times, then hands the rewards and episode ends [T, E] here. Rows are
    the segment's steps preceded by the ≤ n − 1 steps carried from the last segment whose windows were
    still open; a window starting at row t runs until it holds n steps, an episode ends, or the rows
    run out (then it stays open and is carried). The result is the same transitions, in the same
    order (by completing step, then env, then start), as pushing the steps one by one into an
    ``NStepAccumulator``, which the tests check on random streams.
    """

    def __init__(self, num_envs: int, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.gamma = n, gamma
        self.reward = np.zeros((0, num_envs))
        self.terminated = np.zeros((0, num_envs), dtype=bool)
        self.truncated = np.zeros((0, num_envs), dtype=bool)
        self.emitted = np.zeros((0, num_envs), dtype=bool)

    @property
    def carried(self) -> int:
        """Rows carried into the next segment (the caller keeps the same last rows of its records)."""
        return len(self.reward)

    @property
    def pending(self) -> int:
        """Steps whose windows are still open."""
        return int((~self.emitted).sum())

    def process(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> Windows:
        """Add T steps ([T, E] each); returns the windows they complete. Row r of the result's indices is
        row r of (carried rows, then these T)."""
        r = np.concatenate([self.reward, reward])
        term = np.concatenate([self.terminated, terminated])
        trunc = np.concatenate([self.truncated, truncated])
        emitted = np.concatenate([self.emitted, np.zeros(terminated.shape, dtype=bool)])
        rows = len(r)
        ended = term | trunc
        ret = np.zeros(r.shape)
        length = np.zeros(r.shape, dtype=np.int64)
        hit_end = np.zeros(r.shape, dtype=bool)
        alive = np.ones(r.shape, dtype=bool)
        t = np.arange(rows)
        for k in range(self.n):  # grow every window by one step
            j = np.minimum(t + k, rows - 1)
            alive &= (t + k < rows)[:, None]
            ret += np.where(alive, self.gamma**k * r[j], 0.0)
            length += alive
            hit_end |= alive & ended[j]
            alive &= ~ended[j]
        emit = ((length == self.n) | hit_end) & ~emitted
        start, env = np.nonzero(emit)
        end = start + length[start, env] - 1
        order = np.lexsort((start, env, end))
        start, env, end = start[order], env[order], end[order]
        done = term[end, env]
        keep = min(self.n - 1, rows)
        self.reward, self.terminated, self.truncated = (
            r[rows - keep :],
            term[rows - keep :],
            trunc[rows - keep :],
        )
        self.emitted = (emitted | emit)[rows - keep :]
        return Windows(start, env, end, ret[start, env], length[start, env], done, trunc[end, env] & ~done)
