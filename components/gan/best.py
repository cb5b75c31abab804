"""The best generator a run has evaluated, by the run's own metric (lower is better), kept as weights.

GAN training is not monotone: a generator can be better at some report than at the last one. As DQN
keeps its best network, a GAN run keeps the generator (live or averaged) with the lowest
``eval_distance`` over every report, so the run can hand it over as a model beside the last one.
Ties keep the earlier snapshot; a NaN never wins. The snapshot holds the generator's whole state
dict (batch-norm statistics included), so evaluating it again on the same latents gives the same
number.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class BestGenerator:
    """The lowest-metric snapshot so far: its weights, metric, step and which generator it was."""

    def __init__(self) -> None:
        self.value = math.inf
        self.step = -1
        self.source = ""  # "average" or "live"
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, value: float, step: int, source: str, net: nn.Module) -> bool:
        """Keep ``net``'s weights if ``value`` beats the best so far; True if it did."""
        if not value < self.value:
            return False
        self.value, self.step, self.source = float(value), int(step), source
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "step": self.step, "source": self.source, "state": self.state or {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.step, self.source = float(state["value"]), int(state["step"]), str(state["source"])
        self.state = dict(state["state"]) or None
