"""Parameter counts against the formulas, and the shared interface of the two implementations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.seq.models import LastStepRegressor
from components.seq.recurrent import ExplicitRNN, count_params, detach_state, make_recurrent, recurrent_params


def test_textbook_parameter_counts() -> None:
    """m = 10 inputs, n = 20 units: PyTorch keeps two biases per gate, the equations one."""
    n, m = 20, 10
    assert count_params(nn.LSTM(m, n)) == 4 * (n * m + n * n + 2 * n) == 2560
    assert count_params(nn.GRU(m, n)) == 3 * (n * m + n * n + 2 * n) == 1920
    assert count_params(ExplicitRNN("lstm", m, n)) == 4 * (n * m + n * n + n) == 2480
    assert count_params(ExplicitRNN("gru", m, n)) == 3 * (n * m + n * n + n) == 1860
    assert recurrent_params("lstm", n, m, biases_per_gate=2) == 2560
    assert recurrent_params("gru", n, m, biases_per_gate=2) == 1920
    # The whole textbook model: the LSTM plus a Linear(20, 1) head.
    assert count_params(LastStepRegressor(10, 20, 1)) == 2560 + 20 + 1
    assert count_params(LastStepRegressor(10, 20, 1, cell="gru")) == 1920 + 21


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("n,m,layers", [(7, 3, 1), (32, 16, 3)])
def test_counts_follow_the_formula_for_every_size(cell: str, n: int, m: int, layers: int) -> None:
    expected = recurrent_params(cell, n, m) + (layers - 1) * recurrent_params(cell, n, n)  # type: ignore[arg-type]
    assert count_params(make_recurrent(cell, "explicit", m, n, layers)) == expected  # type: ignore[arg-type]
    fused = recurrent_params(cell, n, m, 2) + (layers - 1) * recurrent_params(cell, n, n, 2)  # type: ignore[arg-type]
    assert count_params(make_recurrent(cell, "fused", m, n, layers)) == fused  # type: ignore[arg-type]
    # The GRU/LSTM ratio is exactly 3/4 however the biases are counted.
    assert recurrent_params("gru", n, m) * 4 == recurrent_params("lstm", n, m) * 3


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_both_implementations_share_shapes_and_state_layout(cell: str) -> None:
    x = torch.randn(4, 6, 3)
    shapes = []
    for impl in ("fused", "explicit"):
        rnn = make_recurrent(cell, impl, 3, 5, num_layers=2)  # type: ignore[arg-type]
        out, state = rnn(x)
        out2, _ = rnn(x, detach_state(state))  # the state it returns is one it accepts
        assert out.shape == out2.shape == (4, 6, 5)
        parts = state if isinstance(state, tuple) else (state,)
        shapes.append([tuple(p.shape) for p in parts])
    assert shapes[0] == shapes[1] == [(2, 4, 5)] * (2 if cell == "lstm" else 1)


def test_explicit_dropout_acts_between_layers_only_in_training() -> None:
    torch.manual_seed(0)
    rnn = ExplicitRNN("lstm", 3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, 3)
    rnn.eval()
    a, _ = rnn(x)
    b, _ = rnn(x)
    torch.testing.assert_close(a, b)
    rnn.train()
    c, _ = rnn(x)
    assert (c - a).abs().max() > 1e-4
