"""Sample-quality metrics: mode coverage and high-quality samples for mixtures, distances to data.

Mixture metrics follow the VEEGAN / PacGAN tables: of 2,500 samples, a sample is *high quality* when
it lies within ``k``·σ (k = 3) of its nearest mode, and a mode is *covered* when at least one
high-quality sample is nearest to it. A diffuse generator can land one sample in each mode's disk by
chance, which its low high-quality share then shows; ``cover_fraction`` > 0 asks for more, at least
that fraction of a uniform share, n/K, per mode.

Every metric runs on the device its inputs are on; only the final numbers come back to the host.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class ModeStats(NamedTuple):
    modes_covered: int  # modes with ≥ max(1, cover_fraction·N/K) high-quality samples
    hq_fraction: float  # share of samples within k·σ of their nearest mode
    counts: np.ndarray  # [K] high-quality samples per mode


def mode_stats(
    samples: torch.Tensor,
    modes: torch.Tensor,
    sigma: float,
    k_sigma: float = 3.0,
    cover_fraction: float = 0.0,
) -> ModeStats:
    """Coverage and quality of 2-D ``samples`` [N, 2] against mixture ``modes`` [K, 2] of std ``sigma``."""
    dist = torch.cdist(samples.double(), modes.double())  # [N, K]
    nearest_d, nearest = dist.min(dim=1)
    hq = nearest_d <= k_sigma * sigma
    counts = torch.bincount(nearest[hq], minlength=len(modes)).cpu().numpy()
    threshold = max(1.0, cover_fraction * len(samples) / len(modes))
    return ModeStats(int((counts >= threshold).sum()), float(hq.double().mean()), counts)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance 2·E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (≥ 0, zero iff equal laws), V-statistic.

    Samples of any shape are flattened; cost is O(N·M) memory, so pass a few thousand at most.
    """
    x, y = x.flatten(1).double(), y.flatten(1).double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced W1: the mean over random unit directions θ of W1 between the projections θ·x and θ·y.

    Needs equally many samples on both sides (sorted projections are matched one to one).
    """
    if len(x) != len(y):
        raise ValueError(f"sliced_wasserstein needs equal sample counts, got {len(x)} and {len(y)}")
    x, y = x.flatten(1).double(), y.flatten(1).double()
    g = torch.Generator(device="cpu").manual_seed(seed)  # the same directions on every device
    theta = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64, device="cpu")
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(x.device)
    px, _ = (x @ theta).sort(dim=0)
    py, _ = (y @ theta).sort(dim=0)
    return float((px - py).abs().mean())


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] of features [N, F], in float64 (numpy, on the host)."""
    f = features.double().cpu().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), the FID formula (Heusel et al. 2017).

    tr((Σ₁Σ₂)^½) is the sum of the square roots of the eigenvalues of Σ₁Σ₂, which are real and ≥ 0
    for covariance matrices (Σ₁Σ₂ is similar to Σ₁^½Σ₂Σ₁^½); tiny negative round-off is clipped.
    """
    eig = np.linalg.eigvals(cov1 @ cov2)
    tr_sqrt = float(np.sqrt(np.clip(eig.real, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def class_coverage(predicted: torch.Tensor, n_classes: int, cover_fraction: float = 0.1) -> int:
    """Classes predicted for at least ``cover_fraction`` of a uniform share of the samples (and ≥ 1)."""
    counts = torch.bincount(predicted, minlength=n_classes)
    return int((counts >= max(1.0, cover_fraction * len(predicted) / n_classes)).sum())
