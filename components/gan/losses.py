"""GAN objectives as pure functions of discriminator outputs, and the two Lipschitz constraints.

Classic GAN (Goodfellow et al. 2014): D outputs a logit l, D(x) = σ(l). With
log D = logσ(l) and log(1 − D) = logσ(−l) every term is computed stably from logits.
WGAN (Arjovsky et al. 2017): the critic's score f(x) is unbounded and the critic maximises
E[f(x)] − E[f(G(z))], its estimate of W1 once f is (kept) 1-Lipschitz, by weight clipping (WGAN) or
a gradient penalty (WGAN-GP, Gulrajani et al. 2017).

Precision: every function reduces in at least fp32. Scores that come out of a bf16 (or fp16)
autocast region are upcast first, so a mean over a batch and the log-sigmoids keep fp32 accuracy;
float64 inputs stay float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 if it is in a half type (bf16, fp16); float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


# -- classic GAN --------------------------------------------------------------------------------


def minimax_value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """V(D, G) = E[log D(x)] + E[log(1 − D(G(z)))], which D maximises; −log 4 + 2·JSD at D*."""
    return F.logsigmoid(fp32(real_logits)).mean() + F.logsigmoid(-fp32(fake_logits)).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−V(D, G): what the discriminator minimises (binary cross-entropy, real = 1, fake = 0)."""
    return -minimax_value(real_logits, fake_logits)


def saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 − D(G(z)))], the minimax generator loss; its gradient vanishes when D rejects fakes."""
    return F.logsigmoid(-fp32(fake_logits)).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−E[log D(G(z))], the paper's practical alternative: same fixed point, strong early gradients."""
    return -F.logsigmoid(fp32(fake_logits)).mean()


# -- Wasserstein GAN ------------------------------------------------------------------------------


def wasserstein_estimate(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[f(x)] − E[f(G(z))]: the critic's estimate of W1 (its Wasserstein curve)."""
    return fp32(real_scores).mean() - fp32(fake_scores).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """What the critic minimises: −(E[f(x)] − E[f(G(z))]), before any penalty."""
    return -wasserstein_estimate(real_scores, fake_scores)


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """−E[f(G(z))]: the generator moves its samples up the critic."""
    return -fp32(fake_scores).mean()


# -- Lipschitz constraints ----------------------------------------------------------------------


def interpolates(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """x̂ = α·x + (1 − α)·x̃ with one α per sample, broadcast over any sample shape."""
    a = alpha.reshape(len(alpha), *([1] * (real.dim() - 1)))
    return a * real + (1 - a) * fake


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(‖∇f(x̂)‖₂ − 1)²] on random interpolates, for samples of any shape ([B, D] or [B, C, H, W]).

    Multiply by λ in the critic loss. The graph is kept (``create_graph``) so the penalty trains the
    critic. ``alpha`` [B] fixes the interpolation weights (tests); by default α ~ U[0, 1] per sample,
    drawn on ``real``'s device in its dtype (pass a ``generator`` on that device, or none). ``fake``
    is detached and cast to ``real``'s dtype: the penalty constrains the critic only.

    Under bf16 autocast the critic's forward runs in bf16, but x̂, its gradient, the norms and the
    mean are fp32 (or ``real``'s dtype if wider), so the penalty keeps fp32 accuracy in its reduction.
    """
    if alpha is None:
        alpha = torch.rand(len(real), generator=generator, dtype=real.dtype, device=real.device)
    fake = fake.detach().to(real.dtype)
    x_hat = interpolates(real.detach(), fake, alpha.to(real.device, real.dtype)).requires_grad_(True)
    scores = fp32(critic(x_hat))
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = fp32(grad).flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float) -> None:
    """Clamp every parameter of ``module`` to [−c, c] in place (WGAN, after each critic step)."""
    for p in module.parameters():
        p.clamp_(-c, c)
