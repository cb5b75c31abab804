"""Shapes of both models and the temperature sampler against the softmax it samples from."""

from __future__ import annotations

import pytest
import torch

from components.seq.models import CharLM, LastStepRegressor


@pytest.mark.parametrize("impl", ["fused", "explicit"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_shapes(cell: str, impl: str) -> None:
    torch.manual_seed(0)
    reg = LastStepRegressor(10, 20, 1, cell=cell, impl=impl)  # type: ignore[arg-type]
    assert reg(torch.randn(4, 7, 10)).shape == (4, 1)
    lm = CharLM(30, embed_dim=8, hidden_size=16, num_layers=2, dropout=0.1, cell=cell, impl=impl)  # type: ignore[arg-type]
    logits, state = lm(torch.randint(0, 30, (3, 9)))
    assert logits.shape == (3, 9, 30)
    logits2, _ = lm(torch.randint(0, 30, (3, 4)), state)
    assert logits2.shape == (3, 4, 30)


def test_last_step_regressor_reads_only_the_last_output() -> None:
    """Changing the last input step changes the prediction; the model is causal in time."""
    torch.manual_seed(0)
    model = LastStepRegressor(10, 20, 1)
    x = torch.randn(2, 6, 10)
    y = model(x)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert (model(x2) - y).abs().min() > 1e-6
    # Equals fc(h_T) computed by hand from the LSTM's final state.
    _, (h, _) = model.rnn(x)
    torch.testing.assert_close(y, model.fc(h[-1]))


def _tiny_lm() -> CharLM:
    torch.manual_seed(0)
    return CharLM(4, embed_dim=3, hidden_size=5, num_layers=1)


def test_low_temperature_sampling_is_greedy_decoding() -> None:
    lm = _tiny_lm().eval()
    prime = torch.tensor([1, 2])
    sampled = lm.sample(prime, 12, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    # Greedy by hand: feed the whole sequence each time and take the argmax of the last logits.
    seq = prime.tolist()
    with torch.no_grad():
        for _ in range(12):
            logits, _ = lm(torch.tensor([seq]))
            seq.append(int(logits[0, -1].argmax()))
    assert sampled.tolist() == seq[2:]


def test_sampled_frequencies_follow_softmax_of_logits_over_temperature() -> None:
    """With a zero output matrix the logits are the head's bias at every step, so the draws are i.i.d."""
    lm = _tiny_lm()
    bias = torch.tensor([2.0, 0.5, -1.0, 0.0])
    with torch.no_grad():
        lm.head.weight.zero_()
        lm.head.bias.copy_(bias)
    n = 1500
    for temp in (1.0, 2.5):
        probs = torch.softmax(bias.double() / temp, -1)
        draws = lm.sample(torch.tensor([0]), n, temp, torch.Generator().manual_seed(1))
        freq = torch.bincount(draws, minlength=4).double() / n
        sd = torch.sqrt(probs * (1 - probs) / n)
        assert torch.all((freq - probs).abs() < 4 * sd), (temp, freq, probs)
    with pytest.raises(ValueError):
        lm.sample(torch.tensor([0]), 1, 0.0)
