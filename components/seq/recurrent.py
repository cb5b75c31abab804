"""Stacked recurrent networks: the explicit cells or PyTorch's fused kernels behind one interface.

``make_recurrent(cell, impl, ...)`` returns a module that behaves like ``nn.LSTM`` / ``nn.GRU`` with
``batch_first=True``: ``forward(x [B, T, in], state) -> (outputs [B, T, H], state)`` where the state
is ``(h, c)`` each [L, B, H] for the LSTM and ``h`` [L, B, H] for the GRU. Models never need to know
which implementation they run on. This module also holds the weight mappings from the fused
modules and the parameter-count formulas the tests check.

Precision: under autocast (``train.precision: bf16``) the fused kernels run in fp32, outside autocast.
Torch's autocast puts cuDNN's LSTM/GRU in fp16 whatever autocast's dtype (with no loss scale: bf16's
range, fp16's 5-bit exponent), and on the CPU it runs the LSTM in bf16 but the GRU's gates in fp32:
neither is the bf16 a user asked for. So the recurrence stays fp32 (TF32 on CUDA where allowed) and
the layers around it (embedding, output) follow autocast. The explicit cells are plain matmuls and
elementwise ops: under autocast their matmuls run in bf16 and their state stays fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from components.seq.cells import GRULayer, LSTMLayer

Cell = Literal["lstm", "gru"]
Impl = Literal["fused", "explicit"]
State = Tensor | tuple[Tensor, Tensor]

GATES = {"lstm": 4, "gru": 3}


class ExplicitRNN(nn.Module):
    """A stack of explicit LSTM or GRU layers with ``nn.LSTM``'s calling convention.

    Dropout is applied to the outputs of every layer but the last, as ``nn.LSTM(dropout=p)`` does.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        reset_after: bool = False,
    ) -> None:
        super().__init__()
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        layers: list[nn.Module] = []
        for size in sizes:
            layers.append(
                LSTMLayer(size, hidden_size) if cell == "lstm" else GRULayer(size, hidden_size, reset_after)
            )
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        hs, cs = [], []
        for k, layer in enumerate(self.layers):
            if k > 0:
                x = self.dropout(x)
            layer_state: State | None = None
            if state is None:
                pass
            elif isinstance(state, tuple):
                layer_state = (state[0][k], state[1][k])
            else:
                layer_state = state[k]
            x, final = layer(x, layer_state)
            if isinstance(final, tuple):
                hs.append(final[0])
                cs.append(final[1])
            else:
                hs.append(final)
        if self.cell == "lstm":
            return x, (torch.stack(hs), torch.stack(cs))
        return x, torch.stack(hs)


def _in_fp32(
    forward: Callable[..., tuple[Tensor, State]], x: Tensor, hx: State | None
) -> tuple[Tensor, State]:
    """``forward(x, hx)`` as it is outside autocast; in fp32 with autocast off inside it."""
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return forward(x, hx)
    if isinstance(hx, tuple):
        hx = (hx[0].float(), hx[1].float())
    elif hx is not None:
        hx = hx.float()
    with torch.autocast(kind, enabled=False):
        return forward(x.float(), hx)


class FusedLSTM(nn.LSTM):
    """``nn.LSTM`` whose kernel runs in fp32 even under autocast (see the module doc)."""

    def forward(self, input: Tensor, hx: State | None = None) -> tuple[Tensor, State]:  # type: ignore[override]
        return _in_fp32(super().forward, input, hx)


class FusedGRU(nn.GRU):
    """``nn.GRU`` whose kernel runs in fp32 even under autocast (see the module doc)."""

    def forward(self, input: Tensor, hx: State | None = None) -> tuple[Tensor, State]:  # type: ignore[override]
        return _in_fp32(super().forward, input, hx)


def make_recurrent(
    cell: Cell,
    impl: Impl,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    reset_after: bool = False,
) -> nn.Module:
    """The recurrent stack for ``cell`` on the fused kernel or the explicit cells.

    ``reset_after`` only concerns the explicit GRU (the fused GRU is always reset-after).
    """
    if impl == "fused":
        cls: type[nn.Module] = FusedLSTM if cell == "lstm" else FusedGRU
        return cls(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
    return ExplicitRNN(cell, input_size, hidden_size, num_layers, dropout, reset_after)


def detach_state(state: State | None) -> State | None:
    """Cut the graph between truncated-BPTT windows while keeping the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return (state[0].detach(), state[1].detach())
    return state.detach()


# ---------------------------------------------------------------------------------------------
# Parameter counts (n hidden units, m inputs, one layer)


def recurrent_params(cell: Cell, n: int, m: int, biases_per_gate: int = 1) -> int:
    """g·(n·m + n² + b·n) with g = 4 (LSTM) or 3 (GRU) gates and b bias vectors per gate.

    The equations have one bias per gate (b = 1); PyTorch's modules keep two (b = 2).
    """
    return GATES[cell] * (n * m + n * n + biases_per_gate * n)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# Weight mappings from the fused modules


@torch.no_grad()
def lstm_from_torch(explicit: ExplicitRNN, fused: nn.LSTM) -> None:
    """Copy ``nn.LSTM`` weights into an explicit LSTM stack: exact (same gate order, b = b_ih + b_hh)."""
    for k, layer in enumerate(explicit.layers):
        assert isinstance(layer, LSTMLayer), "lstm_from_torch needs an explicit LSTM stack"
        layer.weight_ih.copy_(getattr(fused, f"weight_ih_l{k}"))
        layer.weight_hh.copy_(getattr(fused, f"weight_hh_l{k}"))
        layer.bias.copy_(getattr(fused, f"bias_ih_l{k}") + getattr(fused, f"bias_hh_l{k}"))


@torch.no_grad()
def gru_from_torch(explicit: ExplicitRNN, fused: nn.GRU) -> None:
    """Copy ``nn.GRU`` weights into an explicit GRU stack.

    PyTorch's gate rows are (r, z, n) and its z blends the other way, so z's weights and biases are
    negated (σ(-a) = 1 - σ(a)); the r biases add up; b_in becomes b_h and b_hn goes to ``bias_hn``.
    With ``reset_after=True`` the result is the same function as ``fused``. With Cho's form it is
    the same function only while h_{t-1} = 0 and b_hn = 0 (a first step from a zero state).
    """
    for k, layer in enumerate(explicit.layers):
        assert isinstance(layer, GRULayer), "gru_from_torch needs an explicit GRU stack"
        n = layer.hidden_size
        w_ih, w_hh = getattr(fused, f"weight_ih_l{k}"), getattr(fused, f"weight_hh_l{k}")
        b_ih, b_hh = getattr(fused, f"bias_ih_l{k}"), getattr(fused, f"bias_hh_l{k}")
        r, z, c = slice(0, n), slice(n, 2 * n), slice(2 * n, 3 * n)
        layer.weight_ih.copy_(torch.cat([-w_ih[z], w_ih[r], w_ih[c]]))
        layer.weight_hh.copy_(torch.cat([-w_hh[z], w_hh[r], w_hh[c]]))
        layer.bias.copy_(torch.cat([-(b_ih[z] + b_hh[z]), b_ih[r] + b_hh[r], b_ih[c]]))
        if layer.bias_hn is not None:
            layer.bias_hn.copy_(b_hh[c])
