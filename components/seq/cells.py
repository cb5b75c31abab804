"""LSTM and GRU layers written from their equations, in pure torch (no fused kernel).

Why they exist: to check and to teach. They run the recurrences exactly as the papers write them,
so a test can compare them with ``nn.LSTM`` / ``nn.GRU`` and a reader can see every gate.

Speed trick (measured on the 2-core dev machine, see DESIGN.md): the input projections ``W x_t + b``
of all time steps are one matrix product before the loop, and the loop walks ``xw.unbind(1)``.
Indexing ``x[:, t]`` inside the loop instead makes the backward pass 9-11x slower.

LSTM (Hochreiter & Schmidhuber 1997, with a forget gate; gate order i, f, g, o as in ``nn.LSTM``)::

    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)        f_t = σ(W_f x_t + U_f h_{t-1} + b_f)
    g_t = tanh(W_c x_t + U_c h_{t-1} + b_c)     o_t = σ(W_o x_t + U_o h_{t-1} + b_o)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t             h_t = o_t ⊙ tanh(c_t)

GRU as Cho et al. (2014) write it (gate order z, r, h̃)::

    z_t = σ(W_z x_t + U_z h_{t-1} + b_z)        r_t = σ(W_r x_t + U_r h_{t-1} + b_r)
    h̃_t = tanh(W_h x_t + U_h (r_t ⊙ h_{t-1}) + b_h)
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

How ``nn.GRU`` differs (see ``recurrent.gru_from_torch`` for the weight mapping):

1. *Where the reset gate acts.* PyTorch applies r after the matrix product and its bias:
   n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn)) ("reset-after", as in cuDNN).
   Cho's form resets the state before the product: U_h (r_t ⊙ h_{t-1}). The two are different
   functions; no weight mapping turns one into the other, except when h_{t-1} = 0 and b_hn = 0.
   ``reset_after=True`` gives this layer PyTorch's form (and the extra bias b_hn).
2. *Which way z blends.* PyTorch: h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}, so its z is Cho's 1 - z.
   Since 1 - σ(a) = σ(-a), negating W_iz, W_hz and both z biases maps one onto the other exactly.
3. *Biases.* PyTorch keeps two biases per gate (b_i* and b_h*), 6 vectors; for z and r only their
   sum matters. Cho's equations (and this layer) keep one per gate, 3 vectors; the reset-after
   form needs a fourth, b_hn, because it sits inside r ⊙ (...). ``nn.LSTM`` likewise has b_ih and
   b_hh per gate; here there is one, b = b_ih + b_hh, which gives the same function.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

Device = torch.device | str | None


def _uniform_(params: list[nn.Parameter], hidden_size: int) -> None:
    """PyTorch's RNN initialisation, U(-1/√H, 1/√H), so both paths start from the same family."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in params:
        nn.init.uniform_(p, -bound, bound)


class LSTMLayer(nn.Module):
    """One LSTM layer over a whole sequence, from the equations above.

    Weights are stored gate-stacked as in ``nn.LSTM`` (rows i, f, g, o), one bias per gate.
    ``device`` works as in ``nn.LSTM``: None means torch's current default device.
    """

    def __init__(self, input_size: int, hidden_size: int, device: Device = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        h4 = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(h4, input_size, device=device))  # [W_i; W_f; W_c; W_o]
        self.weight_hh = nn.Parameter(torch.empty(h4, hidden_size, device=device))  # [U_i; U_f; U_c; U_o]
        self.bias = nn.Parameter(torch.empty(h4, device=device))  # [b_i; b_f; b_c; b_o]
        _uniform_([self.weight_ih, self.weight_hh, self.bias], hidden_size)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: [B, T, input] → (outputs [B, T, H], (h_T, c_T) each [B, H])."""
        batch = x.shape[0]
        if state is None:
            zeros = x.new_zeros(batch, self.hidden_size)
            h, c = zeros, zeros
        else:
            h, c = state
        xw = torch.nn.functional.linear(x, self.weight_ih, self.bias)  # [B, T, 4H], all steps at once
        u = self.weight_hh.t()
        outputs = []
        for xw_t in xw.unbind(1):
            gates = xw_t + h @ u  # [B, 4H]
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)


class GRULayer(nn.Module):
    """One GRU layer over a whole sequence: Cho et al.'s form, or PyTorch's with ``reset_after``.

    Weights are gate-stacked with rows z, r, h̃; one bias per gate, plus ``bias_hn`` (the bias
    inside the reset product) when ``reset_after``. ``device`` works as in ``nn.GRU``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, reset_after: bool = False, device: Device = None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.reset_after = input_size, hidden_size, reset_after
        h3 = 3 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(h3, input_size, device=device))  # [W_z; W_r; W_h]
        self.weight_hh = nn.Parameter(torch.empty(h3, hidden_size, device=device))  # [U_z; U_r; U_h]
        self.bias = nn.Parameter(torch.empty(h3, device=device))  # [b_z; b_r; b_h]
        params = [self.weight_ih, self.weight_hh, self.bias]
        self.bias_hn: nn.Parameter | None = None
        if reset_after:
            self.bias_hn = nn.Parameter(torch.empty(hidden_size, device=device))
            params.append(self.bias_hn)
        _uniform_(params, hidden_size)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: [B, T, input] → (outputs [B, T, H], h_T [B, H])."""
        n = self.hidden_size
        h = x.new_zeros(x.shape[0], n) if state is None else state
        xw = torch.nn.functional.linear(x, self.weight_ih, self.bias)  # [B, T, 3H]
        u_zr = self.weight_hh[: 2 * n].t()  # [H, 2H]
        u_h = self.weight_hh[2 * n :].t()  # [H, H]
        outputs = []
        for xw_t in xw.unbind(1):
            x_zr, x_h = xw_t[:, : 2 * n], xw_t[:, 2 * n :]
            z, r = torch.sigmoid(x_zr + h @ u_zr).chunk(2, dim=1)
            if self.bias_hn is not None:  # PyTorch / cuDNN: reset after the product
                cand = torch.tanh(x_h + r * (h @ u_h + self.bias_hn))
            else:  # Cho et al. 2014: reset the state, then the product
                cand = torch.tanh(x_h + (r * h) @ u_h)
            h = (1 - z) * h + z * cand
            outputs.append(h)
        return torch.stack(outputs, dim=1), h
