"""Losses and the unit conversions between them, as pure functions.

Cross-entropy is computed in nats (what ``F.cross_entropy`` returns); bits per character is the
same quantity divided by ln 2, and character-level perplexity is e^nats = 2^bpc. Predictions that
come out of a bf16 autocast region are upcast to fp32 first: a softmax over the vocabulary and a
mean over a batch keep fp32 accuracy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LN2 = math.log(2.0)


def _fp32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy in nats; logits [B, T, V], targets [B, T]."""
    return F.cross_entropy(_fp32(logits).reshape(-1, logits.shape[-1]), targets.reshape(-1))


def lm_loss_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """Summed cross-entropy in nats, for exact averages over windows of unequal size."""
    flat = _fp32(logits).reshape(-1, logits.shape[-1])
    return F.cross_entropy(flat, targets.reshape(-1), reduction="sum")


def correct_count(logits: Tensor, targets: Tensor) -> int:
    """How many argmax predictions equal the targets."""
    return int((logits.argmax(dim=-1) == targets).sum())


def nats_to_bits(nats: float) -> float:
    return nats / LN2


def perplexity_from_bits(bits: float) -> float:
    return float(2.0**bits)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element."""
    return torch.mean((_fp32(pred) - target) ** 2)
