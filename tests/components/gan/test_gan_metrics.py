"""Metrics against hand computations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from components.gan.data import ring_modes
from components.gan.metrics import (
    class_coverage,
    energy_distance,
    frechet_distance,
    gaussian_stats,
    mode_stats,
    sliced_wasserstein,
)


def test_mode_stats_by_hand() -> None:
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    # σ = 0.1, 3σ = 0.3: three samples near mode 0, one near mode 1, one in between (low quality).
    x = torch.tensor([[0.1, 0.0], [0.0, -0.2], [0.2, 0.2], [9.9, 0.0], [5.0, 0.0]])
    st = mode_stats(x, modes, sigma=0.1, k_sigma=3.0, cover_fraction=0.5)  # threshold 0.5·5/2 = 1.25
    assert st.counts.tolist() == [3, 1]
    assert st.hq_fraction == pytest.approx(4 / 5)
    assert st.modes_covered == 1
    assert mode_stats(x, modes, 0.1, 3.0, cover_fraction=0.4).modes_covered == 2  # threshold 1.0
    # The default is VEEGAN's rule: one high-quality sample covers a mode; the in-between one does not.
    assert mode_stats(x[3:], modes, 0.1).modes_covered == 1
    assert mode_stats(x, modes, 0.1).modes_covered == 2


def test_real_ring_samples_cover_every_mode_with_997_percent_quality() -> None:
    # In 2-D, ‖residual‖/σ is Rayleigh: P(‖r‖ ≤ 3σ) = 1 − exp(−9/2) = 0.9889.
    modes = ring_modes(8, 2.0)
    g = torch.Generator().manual_seed(0)
    x = modes[torch.randint(8, (20_000,), generator=g)] + 0.02 * torch.randn(20_000, 2, generator=g)
    st = mode_stats(x, modes, 0.02)
    assert st.modes_covered == 8
    assert st.hq_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.003)


def test_energy_distance_closed_forms() -> None:
    x = torch.zeros(50, 2)
    y = torch.zeros(40, 2) + torch.tensor([3.0, 4.0])
    assert energy_distance(x, y) == pytest.approx(2 * 5.0)  # point masses: 2‖a − b‖
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 2, generator=g)
    assert energy_distance(z, z) == pytest.approx(0.0, abs=1e-12)


def test_sliced_wasserstein_of_a_shift_is_2_over_pi_times_the_shift_in_2d() -> None:
    # W1 of projections of a shift by μ onto θ is |θ·μ|; E over θ uniform on the circle is 2|μ|/π.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=g)
    mu = torch.tensor([1.5, -2.0])
    sw = sliced_wasserstein(x, x + mu, projections=4000)
    assert sw == pytest.approx(2 * 2.5 / math.pi, rel=0.02)


def test_frechet_distance_of_gaussians_in_closed_form() -> None:
    # Commuting diagonal covariances: FD = ‖Δμ‖² + Σ (√a − √b)².
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    hand = 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(hand)
    # A non-commuting pair against scipy's matrix square root.
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = m1 @ m1.T, m2 @ m2.T
    ref = np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(ref, rel=1e-6)


def test_gaussian_stats_and_class_coverage() -> None:
    f = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    mu, cov = gaussian_stats(f)
    assert mu.tolist() == [2.0, 4.0] and cov.tolist() == [[2.0, 4.0], [4.0, 8.0]]
    pred = torch.tensor([0] * 50 + [1] * 45 + [2] * 4 + [3] * 1)  # uniform share of 4 classes: 25
    assert class_coverage(pred, 4, cover_fraction=0.1) == 3  # 2.5 needed: class 3 misses
    assert class_coverage(pred, 10, cover_fraction=0.1) == 4  # share 10, threshold 1.0: class 3 counts
