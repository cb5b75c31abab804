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
