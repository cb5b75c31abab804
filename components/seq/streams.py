"""Truncated BPTT over a continuous stream of characters.

The token stream is cut into ``batch_size`` equal contiguous lanes (row b of a [B, N] matrix);
step after step the trainer reads the next ``bptt`` columns, so each lane's hidden state carries
over from one window to the next, and gradients stop at the window edge (the state is detached).
When the lanes run out, they wrap to the start and the state is reset. The lanes are copied to the
trainer's device once; a window is then a view of them, so no step copies tokens to the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class TokenBatch(NamedTuple):
    """One truncated-BPTT window: inputs and next-character targets."""

    inputs: Tensor  # [B, T] int64
    targets: Tensor  # [B, T] int64, inputs shifted by one
    fresh: bool  # True at the start of the lanes: the carried state must be reset


def lanes(ids: np.ndarray, batch_size: int) -> Tensor:
    """[B, N] with N = len(ids) // B: lane b is ids[b·N : (b+1)·N] (the remainder is dropped)."""
    n = len(ids) // batch_size
    if n < 2:
        raise ValueError(f"{len(ids)} tokens cannot fill {batch_size} lanes of at least 2 tokens")
    return torch.from_numpy(np.ascontiguousarray(ids[: n * batch_size])).view(batch_size, n)


class StreamBatcher:
    """Hands out consecutive windows of the lanes; ``offset`` is its whole state (for checkpoints)."""

    def __init__(
        self, ids: np.ndarray, batch_size: int, bptt: int, device: torch.device | str = "cpu"
    ) -> None:
        self.data = lanes(ids, batch_size).to(device)
        self.bptt = bptt
        self.offset = 0

    def next(self) -> TokenBatch:
        n = self.data.shape[1]
        if self.offset + 1 >= n:
            self.offset = 0
        fresh = self.offset == 0
        t = min(self.bptt, n - 1 - self.offset)
        window = self.data[:, self.offset : self.offset + t + 1]
        self.offset += t
        return TokenBatch(window[:, :-1], window[:, 1:], fresh)


def eval_windows(
    ids: np.ndarray, batch_size: int, bptt: int, device: torch.device | str = "cpu"
) -> list[TokenBatch]:
    """All windows of one pass over the held-out lanes, in order (the first is ``fresh``), on ``device``."""
    data = lanes(ids, batch_size).to(device)
    n = data.shape[1]
    out = []
    for start in range(0, n - 1, bptt):
        window = data[:, start : min(start + bptt, n - 1) + 1]
        out.append(TokenBatch(window[:, :-1], window[:, 1:], start == 0))
    return out
