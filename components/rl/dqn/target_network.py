"""The online/target network pair, with the target moved explicitly."""

from __future__ import annotations

import copy

import torch
from torch import nn


class TargetPair:
    """An online network and a frozen copy that follows it: a hard copy every K steps or Polyak τ.

    ``sync(tau)``: θ_target ← τ·θ_online + (1 − τ)·θ_target; τ = 1 is the hard copy of Mnih et al.
    Buffers (batch-norm statistics) are copied as they are.
    """

    def __init__(self, online: nn.Module) -> None:
        self.online = online
        self.target = copy.deepcopy(online)
        for p in self.target.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def sync(self, tau: float = 1.0) -> None:
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        for t, o in zip(self.target.parameters(), self.online.parameters()):
            if tau == 1.0:
                t.copy_(o)
            else:
                t.lerp_(o, tau)
        for tb, ob in zip(self.target.buffers(), self.online.buffers()):
            tb.copy_(ob)
