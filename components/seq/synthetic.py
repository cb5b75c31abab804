"""Last-step regression tasks with known baselines: the adding problem and a noisy linear sum.

Both generate fresh batches from a seeded ``torch.Generator``, so there is no dataset to overfit
and the held-out set is simply another generator stream. A batch is drawn on the generator's device.

*Adding problem* (Hochreiter & Schmidhuber 1997): each step carries (value ~ U(0, 1), marker).
Exactly two markers are 1, one in the first half and one in the second; the target is the sum of
the two marked values. Predicting the constant 1 scores MSE = Var(U1 + U2) = 2/12 ≈ 0.167, so a
model only beats that by carrying information across up to T steps.

*Linear sum* (the textbook model's task): x_t ~ N(0, I_d), y = Σ_t w·x_t / √T + ε with a fixed
unit vector w and ε ~ N(0, σ²). Var(y) = 1 + σ² is the constant predictor's MSE; σ² is the best
any predictor can do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

ADDING_TRIVIAL_MSE = 2.0 / 12.0


class RegressionBatch(NamedTuple):
    """Inputs and last-step targets."""

    x: Tensor  # [B, T, D]
    y: Tensor  # [B, 1]


def adding_batch(batch_size: int, length: int, generator: torch.Generator) -> RegressionBatch:
    """A batch of the adding problem with sequence length ``length`` (≥ 2); x is [B, T, 2]."""
    device = generator.device
    values = torch.rand(batch_size, length, generator=generator, device=device)
    half = length // 2
    first = torch.randint(0, half, (batch_size,), generator=generator, device=device)
    second = torch.randint(half, length, (batch_size,), generator=generator, device=device)
    markers = torch.zeros(batch_size, length, device=device)
    rows = torch.arange(batch_size, device=device)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values * markers).sum(dim=1, keepdim=True)
    return RegressionBatch(torch.stack([values, markers], dim=2), y)


def linear_sum_weights(input_dim: int, seed: int) -> Tensor:
    """The fixed unit vector w of the linear-sum task, drawn from ``seed`` on the CPU (the same task
    on every device)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(input_dim, generator=g, device="cpu")
    return w / w.norm()


def linear_sum_batch(
    batch_size: int, length: int, w: Tensor, noise_std: float, generator: torch.Generator
) -> RegressionBatch:
    """A batch of the linear-sum task; x is [B, T, len(w)], Var(y) = 1 + noise_std²."""
    device = generator.device
    x = torch.randn(batch_size, length, w.numel(), generator=generator, device=device)
    y = (x @ w.to(device)).sum(dim=1, keepdim=True) / math.sqrt(length)
    y = y + noise_std * torch.randn(batch_size, 1, generator=generator, device=device)
    return RegressionBatch(x, y)
