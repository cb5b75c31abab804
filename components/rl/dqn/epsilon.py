"""Exploration rates for collectors."""

from __future__ import annotations

import numpy as np


def apex_epsilons(num_actors: int, base: float = 0.4, alpha: float = 7.0) -> np.ndarray:
    """Ape-X (Horgan et al. 2018): ε_i = base^(1 + α·i/(N − 1)) for i = 0..N−1 (base alone for N = 1).

    adl applies it per environment copy across all collectors (N = collectors × envs each), which
    gives every vector env a spread of behaviour policies from exploratory (0.4) to nearly greedy.
    """
    if num_actors == 1:
        return np.array([base])
    i = np.arange(num_actors)
    return base ** (1.0 + alpha * i / (num_actors - 1))
