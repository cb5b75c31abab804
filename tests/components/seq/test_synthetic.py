"""The adding problem and the linear-sum task against their theoretical baselines."""

from __future__ import annotations

import torch

from components.seq.synthetic import ADDING_TRIVIAL_MSE, adding_batch, linear_sum_batch, linear_sum_weights


def test_adding_batch_structure() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = adding_batch(256, 50, g)
    assert x.shape == (256, 50, 2) and y.shape == (256, 1)
    markers = x[:, :, 1]
    assert torch.all(markers.sum(1) == 2)
    assert torch.all(markers[:, :25].sum(1) == 1) and torch.all(markers[:, 25:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[:, :, 0] * markers).sum(1))


def test_adding_trivial_predictor_scores_one_sixth() -> None:
    g = torch.Generator().manual_seed(1)
    _, y = adding_batch(200_000, 10, g)
    assert abs(ADDING_TRIVIAL_MSE - 1 / 6) < 1e-12
    mse_const = float(((y - 1.0) ** 2).mean())  # E[y] = 1
    assert abs(mse_const - 1 / 6) < 0.003  # std of the estimate ≈ 0.0003


def test_linear_sum_variance_and_noise_floor() -> None:
    w = linear_sum_weights(10, seed=5)
    assert abs(float(w.norm()) - 1) < 1e-6
    g = torch.Generator().manual_seed(2)
    x, y = linear_sum_batch(50_000, 20, w, 0.1, g)
    assert abs(float(y.var()) - 1.01) < 0.03
    oracle = (x @ w).sum(1, keepdim=True) / 20**0.5
    assert abs(float(((y - oracle) ** 2).mean()) - 0.01) < 0.0005
