"""An exponential moving average of the generator's weights, with a decay tied to the run's length.

GAN training does not converge to a point: the generator circles or hops between modes, so the
weights at the last step are a draw from that orbit and often a poor one. Averaging the weights over
time damps the orbit (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training";
ProGAN, StyleGAN and BigGAN sample from such an average). Two choices decide whether it works at a
given run length:

- The decay's *target* β comes from a half-life in steps, a fraction of the run:
  β = 0.5^(1 / (half_life · steps)). A fixed β = 0.999 (half-life 693 steps) lags hopelessly behind a
  4,000-step run that starts from noise; a half-life of 5 % of the run (200 steps) does not.
- A *warm-up*: the k-th update (k = 0, 1, …) uses β_k = min(β, (1 + k)/(10 + k)), as TensorFlow's
  ``ExponentialMovingAverage(num_updates=...)``, so the average starts by following the weights and
  forgets its random start: while the warm-up rules, Π_{j<k} β_j = 9!·k!/(k + 9)! = 1 / C(k + 9, 9).

After k updates with weights θ_1 … θ_k the average is e_k = Π_{j<k} β_j · e_0 + Σ_i (1 − β_{i−1})
Π_{i≤j<k} β_j · θ_i (the tests check it to float64 rounding). Buffers (batch-norm statistics) are not
averaged: they follow the live generator at every update, and :meth:`WeightAverage.refresh_norms`
recomputes them for the averaged weights before they are evaluated (BigGAN's "standing statistics"),
because statistics gathered by other weights do not fit the average.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def target_decay(half_life_steps: float) -> float:
    """β whose weight halves over ``half_life_steps`` updates: 0.5^(1/h)."""
    return 0.5 ** (1.0 / half_life_steps)


def warmup_decay(updates: int, target: float) -> float:
    """The decay of update number ``updates`` (from 0): min(target, (1 + k)/(10 + k))."""
    return min(target, (1.0 + updates) / (10.0 + updates))


def warmup_product(k: int) -> float:
    """Π_{j<k} (1 + j)/(10 + j) = 1 / C(k + 9, 9): how much of the start is left after k warm-up updates."""
    return 1.0 / math.comb(k + 9, 9)


class WeightAverage:
    """A frozen copy of a network whose parameters track the network's by an EMA with warm-up.

    The copy is only read (evaluation, samples, the exported generator), never trained. ``updates``
    counts the updates so far; it is checkpointed, so a resumed run continues the same schedule.
    """

    def __init__(self, net: nn.Module, target: float) -> None:
        if not 0.0 <= target < 1.0:
            raise ValueError(f"the target decay must be in [0, 1), got {target}")
        self.model = copy.deepcopy(net).requires_grad_(False)
        self.target = target
        self.updates = 0

    def decay(self) -> float:
        """The decay the next update will use."""
        return warmup_decay(self.updates, self.target)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """e ← β_k·e + (1 − β_k)·θ for every parameter; buffers copied from ``net``."""
        beta = self.decay()
        averaged: list[torch.Tensor] = list(self.model.parameters())
        live: list[torch.Tensor] = list(net.parameters())
        torch._foreach_lerp_(averaged, live, 1.0 - beta)
        for b_avg, b in zip(self.model.buffers(), net.buffers()):
            b_avg.copy_(b)
        self.updates += 1

    @torch.no_grad()
    def refresh_norms(self, z: torch.Tensor) -> None:
        """Batch-norm statistics for the averaged weights: one training-mode pass over the latents
        ``z`` with a cumulative average (momentum None), so eval mode then normalises as that batch
        does. A network without batch norm is left alone."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        was_training = self.model.training
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            self.model.train()(z)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
