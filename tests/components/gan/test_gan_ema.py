"""The generator's weight average: its decay schedule against closed forms, in the trainer and across
a checkpoint, and the batch-norm statistics it is evaluated with."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from components.config import build
from components.gan.config import GanConfig
from components.gan.ema import WeightAverage, target_decay, warmup_decay, warmup_product
from components.gan.trainer import GanTrainer


def fill(net: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    return net


def linear64() -> nn.Module:
    with torch.device("cpu"):
        return nn.Linear(3, 2).double()


def test_the_target_decay_halves_the_weight_over_the_half_life() -> None:
    for h in (1.0, 7.0, 200.0, 693.0):
        assert target_decay(h) ** h == pytest.approx(0.5, rel=1e-12)
    assert target_decay(693.0) == pytest.approx(0.999, abs=1e-6)  # the old fixed decay


def test_the_warmup_product_is_one_over_a_binomial_coefficient() -> None:
    for k in range(0, 60):
        product = math.prod((1 + j) / (10 + j) for j in range(k))
        assert warmup_product(k) == pytest.approx(product, rel=1e-12)
        assert warmup_product(k) == pytest.approx(
            math.factorial(9) * math.factorial(k) / math.factorial(k + 9)
        )
    assert [warmup_decay(k, 0.99) for k in (0, 1, 8, 10_000)] == [0.1, 2 / 11, 0.5, 0.99]


def test_what_is_left_of_the_start_after_k_updates_is_its_closed_form() -> None:
    """e_0 = 1, θ = 0 at every update: e_k = Π_{j<k} β_j, which is 1/C(k + 9, 9) while the warm-up
    rules and then falls by the target β per update. Target 0.8: the warm-up (1+k)/(10+k) reaches it
    at k = 35."""
    target = 0.8
    avg = WeightAverage(fill(linear64(), 1.0), target)
    live = fill(linear64(), 0.0)
    switch = 35
    assert warmup_decay(switch - 1, target) < target == warmup_decay(switch, target)
    for k in range(1, 61):
        avg.update(live)
        expected = warmup_product(k) if k <= switch else warmup_product(switch) * target ** (k - switch)
        for p in avg.model.parameters():
            torch.testing.assert_close(p, torch.full_like(p, expected), rtol=1e-12, atol=0)
    assert avg.updates == 60


def test_the_average_of_a_known_sequence_is_its_weighted_sum() -> None:
    """θ_i = i (every weight) from e_0 = −3: e_k = Π_{j<k} β_j·e_0 + Σ_i (1 − β_{i−1}) Π_{i≤j<k} β_j·i."""
    target = 0.9
    avg = WeightAverage(fill(linear64(), -3.0), target)
    live = linear64()
    betas = [warmup_decay(j, target) for j in range(40)]
    for k in range(1, 41):
        avg.update(fill(live, float(k)))
        expected = math.prod(betas[:k]) * -3.0 + sum(
            (1 - betas[i - 1]) * math.prod(betas[i:k]) * i for i in range(1, k + 1)
        )
        for p in avg.model.parameters():
            assert p.detach().unique().tolist() == [pytest.approx(expected, rel=1e-12)]


def make(**train: Any) -> GanTrainer:
    t = {"loss": "nonsaturating", "steps": 100, "batch_size": 16, "threads": 1, "device": "cpu", **train}
    return GanTrainer(build(GanConfig, {"train": t, "eval": {"samples": 50}, "report_every": 5}))


def test_the_trainers_average_after_k_steps_is_the_closed_form_of_its_generators() -> None:
    """The trainer's average after k generator steps, against the closed form computed in float64
    from the live generator's weights after each step (target from a half-life of 0.02 × 100 steps)."""
    t = make(ema_half_life=0.02)
    assert t.average is not None
    target = target_decay(2.0)
    assert t.average.target == pytest.approx(target, rel=1e-15)
    start = [p.detach().double().clone() for p in t.generator.parameters()]
    thetas = []
    k = 30  # the warm-up rules up to k = 20 here (β_k = 21/30 < 2^(−1/2)), the target after
    for _ in range(k):
        t.generator_step()
        thetas.append([p.detach().double().clone() for p in t.generator.parameters()])
    betas = [warmup_decay(j, target) for j in range(k)]
    assert betas[0] == 0.1 and betas[-1] == target
    assert t.average.updates == k
    for n, averaged in enumerate(t.average.model.parameters()):
        expected = math.prod(betas) * start[n] + sum(
            (1 - betas[i - 1]) * math.prod(betas[i:k]) * thetas[i - 1][n] for i in range(1, k + 1)
        )
        torch.testing.assert_close(averaged.double(), expected, rtol=0, atol=2e-6)
    # and the average is what the run reports, samples and exports
    assert t.delivered() is t.average.model
    with torch.no_grad():
        torch.testing.assert_close(t.sample(), t.average.model.eval()(t.eval_z))


def test_a_resumed_run_continues_the_average_and_its_schedule() -> None:
    straight = make(ema_half_life=0.1, steps=20)
    straight.run_chunk()
    straight.run_chunk()
    first = make(ema_half_life=0.1, steps=20)
    first.run_chunk()
    state = first.state_dict()
    assert state["average"]["updates"] == 5
    resumed = make(ema_half_life=0.1, steps=20)
    resumed.load_state_dict(state)
    resumed.run_chunk()
    assert resumed.average is not None and straight.average is not None
    assert resumed.average.updates == straight.average.updates == 10
    for a, b in zip(
        straight.average.model.state_dict().values(), resumed.average.model.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_off_means_no_average_and_the_live_generator_is_reported() -> None:
    t = make(ema_half_life=0.0, steps=5)
    assert t.average is None and t.delivered() is t.generator
    m = t.run_chunk()
    assert not any(k.startswith("raw_") for k in m)
    assert m["best_eval_distance"] == m["eval_distance"]


def test_batch_norm_statistics_are_recomputed_for_the_averaged_weights() -> None:
    """After refresh_norms, eval mode on the latents z normalises exactly as training mode does on z."""
    with torch.device("cpu"):
        net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    avg = WeightAverage(net, 0.9)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    avg.update(net)  # buffers now hold the live net's (untouched) statistics
    z = torch.randn(256, 4, generator=torch.Generator().manual_seed(0), device="cpu")
    with torch.no_grad():
        batch = avg.model.train()(z)
        stale = avg.model.eval()(z)
        avg.refresh_norms(z)
        fresh = avg.model(z)
        h = avg.model[0](z)  # what the batch norm sees
    norm = avg.model[1]
    assert not avg.model.training and norm.momentum == 0.1  # the module is left as it was
    torch.testing.assert_close(norm.running_mean, h.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(norm.running_var, h.var(0, unbiased=True), rtol=1e-6, atol=1e-6)
    assert (stale - batch).abs().max() > 0.1  # the live net's statistics do not fit the average
    # Eval mode now normalises as the batch does (up to the unbiased variance's n/(n − 1)).
    torch.testing.assert_close(fresh, batch, rtol=1e-2, atol=1e-3)
