"""Unit conversions of the language-model loss."""

from __future__ import annotations

import math

import torch

from components.seq.losses import correct_count, lm_loss, lm_loss_sum, mse, nats_to_bits, perplexity_from_bits


def test_uniform_prediction_costs_log2_v_bits_and_has_perplexity_v() -> None:
    v = 37
    logits = torch.zeros(2, 5, v)
    targets = torch.randint(0, v, (2, 5))
    bits = nats_to_bits(float(lm_loss(logits, targets)))
    assert abs(bits - math.log2(v)) < 1e-6
    assert abs(perplexity_from_bits(bits) - v) < 1e-4
    assert abs(float(lm_loss_sum(logits, targets)) - 10 * math.log(v)) < 1e-4


def test_confident_correct_prediction_costs_almost_nothing() -> None:
    targets = torch.tensor([[1, 2, 0]])
    logits = torch.nn.functional.one_hot(targets, 3).float() * 30
    assert float(lm_loss(logits, targets)) < 1e-10
    assert correct_count(logits, targets) == 3
    assert float(mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]))) == 2.5
