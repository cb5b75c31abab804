"""The explicit cells against PyTorch's fused modules and against steps worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.seq.cells import GRULayer, LSTMLayer
from components.seq.recurrent import ExplicitRNN, gru_from_torch, lstm_from_torch


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _inputs(batch: int = 3, steps: int = 25, size: int = 5) -> torch.Tensor:
    return torch.randn(batch, steps, size, requires_grad=True)


def test_explicit_lstm_matches_nn_lstm_outputs_states_and_gradients() -> None:
    fused = nn.LSTM(5, 7, num_layers=2, batch_first=True)
    explicit = ExplicitRNN("lstm", 5, 7, num_layers=2)
    lstm_from_torch(explicit, fused)
    x = _inputs()
    h0, c0 = torch.randn(2, 3, 7), torch.randn(2, 3, 7)

    out_f, (h_f, c_f) = fused(x, (h0, c0))
    out_e, (h_e, c_e) = explicit(x, (h0, c0))
    torch.testing.assert_close(out_e, out_f, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_e, h_f, atol=1e-5, rtol=0)
    torch.testing.assert_close(c_e, c_f, atol=1e-5, rtol=0)

    # Same loss of everything the layers produce → same gradients, weight by weight.
    weights = torch.randn_like(out_f)
    grad_x_f = torch.autograd.grad((out_f * weights).sum() + h_f.sum() + c_f.sum(), [x, *fused.parameters()])
    grad_x_e = torch.autograd.grad(
        (out_e * weights).sum() + h_e.sum() + c_e.sum(), [x, *explicit.parameters()]
    )
    torch.testing.assert_close(grad_x_e[0], grad_x_f[0], atol=1e-5, rtol=0)
    gf = dict(zip([n for n, _ in fused.named_parameters()], grad_x_f[1:]))
    ge = dict(zip([n for n, _ in explicit.named_parameters()], grad_x_e[1:]))
    for k in range(2):
        torch.testing.assert_close(ge[f"layers.{k}.weight_ih"], gf[f"weight_ih_l{k}"], atol=1e-5, rtol=0)
        torch.testing.assert_close(ge[f"layers.{k}.weight_hh"], gf[f"weight_hh_l{k}"], atol=1e-5, rtol=0)
        # b = b_ih + b_hh, so dL/db = dL/db_ih = dL/db_hh.
        torch.testing.assert_close(ge[f"layers.{k}.bias"], gf[f"bias_ih_l{k}"], atol=1e-5, rtol=0)
        torch.testing.assert_close(ge[f"layers.{k}.bias"], gf[f"bias_hh_l{k}"], atol=1e-5, rtol=0)


def test_lstm_step_by_hand() -> None:
    layer = LSTMLayer(3, 2).double()
    x = torch.randn(1, 2, 3, dtype=torch.float64)
    W, U, b = (p.detach().numpy() for p in (layer.weight_ih, layer.weight_hh, layer.bias))
    h, c = np.zeros(2), np.zeros(2)
    for t in range(2):
        xt = x[0, t].numpy()
        a = W @ xt + U @ h + b
        i, f, g, o = sigmoid(a[0:2]), sigmoid(a[2:4]), np.tanh(a[4:6]), sigmoid(a[6:8])
        c = f * c + i * g
        h = o * np.tanh(c)
    out, (h_t, c_t) = layer(x)
    np.testing.assert_allclose(h_t[0].detach().numpy(), h, atol=1e-12)
    np.testing.assert_allclose(c_t[0].detach().numpy(), c, atol=1e-12)
    np.testing.assert_allclose(out[0, -1].detach().numpy(), h, atol=1e-12)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_steps_by_hand_from_the_equations(reset_after: bool) -> None:
    """Two steps of z, r, h̃, h computed in numpy from Cho et al.'s equations (or the reset-after form)."""
    layer = GRULayer(3, 2, reset_after=reset_after).double()
    x = torch.randn(1, 2, 3, dtype=torch.float64)
    W, U, b = (p.detach().numpy() for p in (layer.weight_ih, layer.weight_hh, layer.bias))
    Wz, Wr, Wh = W[0:2], W[2:4], W[4:6]
    Uz, Ur, Uh = U[0:2], U[2:4], U[4:6]
    bz, br, bh = b[0:2], b[2:4], b[4:6]
    h = np.array([0.3, -0.6])  # a non-zero start, so the place of the reset gate matters
    h0 = torch.tensor(h).view(1, 2)
    for t in range(2):
        xt = x[0, t].numpy()
        z = sigmoid(Wz @ xt + Uz @ h + bz)
        r = sigmoid(Wr @ xt + Ur @ h + br)
        if reset_after:
            assert layer.bias_hn is not None
            cand = np.tanh(Wh @ xt + bh + r * (Uh @ h + layer.bias_hn.detach().numpy()))
        else:
            cand = np.tanh(Wh @ xt + Uh @ (r * h) + bh)
        h = (1 - z) * h + z * cand
    out, h_t = layer(x, h0)
    np.testing.assert_allclose(h_t[0].detach().numpy(), h, atol=1e-12)
    np.testing.assert_allclose(out[0, -1].detach().numpy(), h, atol=1e-12)


def test_reset_after_gru_with_mapped_weights_matches_nn_gru_exactly() -> None:
    fused = nn.GRU(5, 7, num_layers=2, batch_first=True)
    explicit = ExplicitRNN("gru", 5, 7, num_layers=2, reset_after=True)
    gru_from_torch(explicit, fused)
    x = _inputs()
    h0 = torch.randn(2, 3, 7)
    out_f, h_f = fused(x, h0)
    out_e, h_e = explicit(x, h0)
    torch.testing.assert_close(out_e, out_f, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_e, h_f, atol=1e-5, rtol=0)
    g_f = torch.autograd.grad(out_f.sum() + h_f.sum(), x)[0]
    g_e = torch.autograd.grad(out_e.sum() + h_e.sum(), x)[0]
    torch.testing.assert_close(g_e, g_f, atol=1e-5, rtol=0)


def test_cho_gru_equals_nn_gru_only_where_the_mapping_is_exact() -> None:
    """With b_hn = 0 and h_0 = 0 the first step agrees; later steps do not (reset before vs after)."""
    fused = nn.GRU(5, 16, batch_first=True)
    with torch.no_grad():
        fused.bias_hh_l0[32:].zero_()  # b_hn
    cho = ExplicitRNN("gru", 5, 16)
    gru_from_torch(cho, fused)
    x = torch.randn(8, 20, 5)
    out_f, _ = fused(x)
    out_c, _ = cho(x)
    torch.testing.assert_close(out_c[:, 0], out_f[:, 0], atol=1e-6, rtol=0)
    later = (out_c[:, 1:] - out_f[:, 1:]).abs().max().item()
    assert later > 1e-3, f"Cho's and PyTorch's GRU should differ once h ≠ 0, max diff {later}"
