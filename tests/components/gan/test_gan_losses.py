"""GAN losses against hand computations, and the gradient penalty against theory and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from components.gan import losses


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_minimax_value_matches_hand_computation() -> None:
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    hand = (math.log(sig(0)) + math.log(sig(2))) / 2 + (math.log(1 - sig(-1)) + math.log(1 - sig(1))) / 2
    assert losses.minimax_value(real, fake).item() == pytest.approx(hand, abs=1e-6)
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(-hand, abs=1e-6)


def test_minimax_value_at_indifferent_discriminator_is_minus_log_4() -> None:
    zeros = torch.zeros(5)  # D = 1/2 everywhere
    assert losses.minimax_value(zeros, zeros).item() == pytest.approx(-math.log(4), abs=1e-6)


def test_generator_losses_by_hand_and_their_gradients() -> None:
    logits = torch.tensor([-3.0, 0.5], requires_grad=True)
    sat = losses.saturating_generator_loss(logits)
    assert sat.item() == pytest.approx((math.log(1 - sig(-3)) + math.log(1 - sig(0.5))) / 2, abs=1e-6)
    (g_sat,) = torch.autograd.grad(sat, logits)
    ns = losses.nonsaturating_generator_loss(logits)
    assert ns.item() == pytest.approx(-(math.log(sig(-3)) + math.log(sig(0.5))) / 2, abs=1e-6)
    (g_ns,) = torch.autograd.grad(ns, logits)
    # d/dl log(1 − σ(l)) = −σ(l); d/dl −log σ(l) = −(1 − σ(l)): where D rejects a fake (l = −3) the
    # saturating gradient is small (σ = 0.047) and the non-saturating one large (0.95).
    assert g_sat[0].item() == pytest.approx(-sig(-3) / 2, abs=1e-6)
    assert g_ns[0].item() == pytest.approx(-(1 - sig(-3)) / 2, abs=1e-6)
    assert abs(g_ns[0].item()) > 10 * abs(g_sat[0].item())


def test_wasserstein_losses_by_hand() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5, 1.0])
    assert losses.wasserstein_estimate(real, fake).item() == pytest.approx(2.0 - 1 / 3)
    assert losses.critic_loss(real, fake).item() == pytest.approx(-(2.0 - 1 / 3))
    assert losses.wasserstein_generator_loss(fake).item() == pytest.approx(-1 / 3)


def test_clip_weights_clamps_every_parameter() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    losses.clip_weights_(net, 0.01)
    for p in net.parameters():
        assert p.abs().max().item() == pytest.approx(0.01)


class UnitLinear(nn.Module):
    """f(x) = w·vec(x) with ‖w‖ = 1, so ‖∇f‖ = 1 everywhere."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        w = torch.randn(math.prod(shape), generator=torch.Generator().manual_seed(seed))
        self.w = nn.Parameter(w / w.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


class HalfSquaredNorm(nn.Module):
    """f(x) = s·‖x‖²/2, so ∇f(x) = s·x and ‖∇f(x̂)‖ = s·‖x̂‖."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * 0.5 * x.flatten(1).pow(2).sum(1)


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)], ids=["points", "images"])
def test_gradient_penalty_is_zero_for_unit_gradient_critic(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(16, *shape, generator=g), torch.randn(16, *shape, generator=g)
    gp = losses.gradient_penalty(UnitLinear(shape), real, fake, generator=g)
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)], ids=["points", "images"])
def test_gradient_penalty_matches_hand_case(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(6, *shape, generator=g), torch.randn(6, *shape, generator=g)
    alpha = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0, 0.35])
    critic = HalfSquaredNorm(scale=0.8)
    gp = losses.gradient_penalty(critic, real, fake, alpha=alpha)
    # By hand: x̂_i = α_i x_i + (1 − α_i) x̃_i, ∇f(x̂_i) = 0.8 x̂_i.
    hand = 0.0
    for i in range(6):
        x_hat = alpha[i] * real[i] + (1 - alpha[i]) * fake[i]
        hand += (0.8 * x_hat.norm().item() - 1) ** 2 / 6
    assert gp.item() == pytest.approx(hand, rel=1e-5)
    # And it trains the critic: d gp / d s = mean(2 (s‖x̂‖ − 1) ‖x̂‖), by autograd through create_graph.
    gp.backward()
    norms = torch.stack([(alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).norm() for i in range(6)])
    assert critic.s.grad is not None
    assert critic.s.grad.item() == pytest.approx((2 * (0.8 * norms - 1) * norms).mean().item(), rel=1e-5)


def test_gradient_penalty_matches_autograd_per_sample_on_a_conv_critic() -> None:
    torch.manual_seed(3)
    critic = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(256, 1))
    real, fake = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    alpha = torch.rand(5)
    gp = losses.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, alpha=alpha)  # type: ignore[arg-type]
    expected = 0.0
    for i in range(5):  # one sample at a time: no batch interaction possible
        x = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        expected += (grad.norm().item() - 1) ** 2 / 5
    assert gp.item() == pytest.approx(expected, rel=1e-5)
