"""Losses and the unit conversions between them, as pure functions.

Cross-entropy is computed in nats (what ``F.cross_entropy`` returns); bits per character is the
same quantity divided by ln 2, and character-level perplexity is e^nats = 2^bpc.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LN2 = math.log(2.0)


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy in nats; logits [B, T, V], targets [B, T]."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def lm_loss_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """Summed cross-entropy in nats, for exact averages over windows of unequal size."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")


def correct_count(logits: Tensor, targets: Tensor) -> int:
    """How many argmax predictions equal the targets."""
    return int((logits.argmax(dim=-1) == targets).sum())


def nats_to_bits(nats: float) -> float:
    return nats / LN2


def perplexity_from_bits(bits: float) -> float:
    return float(2.0**bits)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element."""
    return torch.mean((pred - target) ** 2)
