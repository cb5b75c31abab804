"""The optimal discriminator between two known 1-D normals, and the value V(D*, G) it attains.

Goodfellow et al. (2014), Prop. 1: for a fixed generator the discriminator that maximises
V(D, G) = E_data[log D(x)] + E_G[log(1 − D(x))] is

    D*(x) = p_data(x) / (p_data(x) + p_G(x)) = σ(log p_data(x) − log p_G(x)),

and V(D*, G) = −log 4 + 2·JSD(p_data ‖ p_G). ``model.generator: fixed_gaussian`` trains a
discriminator alone against such a pair, and the trainer reports how far it is from D*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch


class NormalPair(NamedTuple):
    """p_data = N(data_mean, data_std²) and p_G = N(gen_mean, gen_std²)."""

    data_mean: float
    data_std: float
    gen_mean: float
    gen_std: float


def normal_log_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """log N(x; mean, std²), elementwise."""
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def optimal_discriminator(x: torch.Tensor, pair: NormalPair) -> torch.Tensor:
    """D*(x) = p_data / (p_data + p_G), computed stably as a sigmoid of the log-density ratio."""
    log_p = normal_log_pdf(x, pair.data_mean, pair.data_std)
    log_q = normal_log_pdf(x, pair.gen_mean, pair.gen_std)
    return torch.sigmoid(log_p - log_q)


def evaluation_grid(pair: NormalPair, points: int, device: torch.device) -> torch.Tensor:
    """``points`` evenly spaced x over [min mean − 3·max std, max mean + 3·max std], as [points, 1]."""
    spread = 3 * max(pair.data_std, pair.gen_std)
    lo = min(pair.data_mean, pair.gen_mean) - spread
    hi = max(pair.data_mean, pair.gen_mean) + spread
    return torch.linspace(lo, hi, points, device=device).unsqueeze(1)


def optimal_value(pair: NormalPair, points: int = 200_001) -> float:
    """V(D*, G) = −log 4 + 2·JSD(p_data ‖ p_G), the JSD as a Riemann sum on a fine float64 grid reaching
    12 standard deviations past both means (the densities are negligible beyond)."""
    spread = 12 * max(pair.data_std, pair.gen_std)
    lo = min(pair.data_mean, pair.gen_mean) - spread
    hi = max(pair.data_mean, pair.gen_mean) + spread
    t = torch.linspace(lo, hi, points, dtype=torch.float64, device="cpu")
    log_p = normal_log_pdf(t, pair.data_mean, pair.data_std)
    log_q = normal_log_pdf(t, pair.gen_mean, pair.gen_std)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    dt = (hi - lo) / (points - 1)
    kl_p = float((log_p.exp() * (log_p - log_m)).sum() * dt)
    kl_q = float((log_q.exp() * (log_q - log_m)).sum() * dt)
    jsd = 0.5 * kl_p + 0.5 * kl_q
    return -math.log(4) + 2 * jsd


class OptimalCheck:
    """A discriminator against D* on a grid over both normals: the mean |D − D*| it reports, and the
    picture of D, D* and both densities it draws. Built once, on the trainer's device."""

    POINTS = 601  # grid points of the comparison

    def __init__(self, pair: NormalPair, device: torch.device) -> None:
        self.pair = pair
        self.grid = evaluation_grid(pair, self.POINTS, device)  # [G, 1]
        self.d_star = optimal_discriminator(self.grid, pair).squeeze(1)  # [G]
        self.v_star = optimal_value(pair)

    def metrics(self, discriminate: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """``d_star_error`` (mean |D − D*| over the grid) and the optimum ``optimal_value`` V(D*, G)."""
        d = discriminate(self.grid).reshape(-1)  # [G]
        return {"d_star_error": float((d - self.d_star).abs().mean()), "optimal_value": self.v_star}

    def plot(self, discriminate: Callable[[torch.Tensor], torch.Tensor], path: Path, title: str) -> Path:
        from components.gan import plots  # matplotlib: ~0.5 s of import, only pictures need it

        d = discriminate(self.grid).reshape(-1)  # [G]
        err = float((d - self.d_star).abs().mean())
        p = self.pair
        return plots.plot_discriminator(
            self.grid,
            d,
            self.d_star,
            normal_log_pdf(self.grid, p.data_mean, p.data_std).exp().squeeze(1),
            normal_log_pdf(self.grid, p.gen_mean, p.gen_std).exp().squeeze(1),
            path,
            f"{title} · mean |D − D*| = {err:.4f}",
        )
