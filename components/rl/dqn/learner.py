"""The learner: batches → Double-DQN updates → new priorities; owns the target network and the optimizer.

On the CPU an update runs eagerly over tensors that wrap the batch's own arrays, as it always has. On
CUDA the learner is built for speed (``learner.*`` options):

- batches go through pinned buffers and a side-stream copy that overlaps the previous update
  (:class:`~components.rl.dqn.staging.BatchStager`);
- the update is one CUDA graph replay (``cuda_graph``: auto = on for CUDA;
  :class:`~components.rl.dqn.graphed_update.GraphedUpdate`), TF32 is on (``tf32``), a CNN runs
  channels-last, and ``precision: bf16`` autocasts the forward passes;
- :meth:`update` returns |δ| and the metrics as one device tensor; the cycle reads all of a call's
  results back with one transfer (:meth:`to_host`), so k updates never wait for the host.

The hard target copy every K steps stays outside the graph (it depends on the step count); the Polyak
step of a soft target is inside it. :meth:`step` keeps the one-batch form (update + read back).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from components.config import ConfigError
from components.device import Placement, prefers_channels_last, resolve_placement, restore_optimizer
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.graphed_update import GraphedUpdate
from components.rl.dqn.networks import get_flat_weights
from components.rl.dqn.staging import BatchStager, consume
from components.rl.dqn.target_network import TargetPair
from components.rl.dqn.update import METRICS, DQNUpdate, UpdateInputs, host_inputs, unpack

__all__ = ["Learner", "learner_placement"]


def learner_placement(cfg: LearnerConfig) -> Placement:
    """Where the learner runs (``learner.device``, ``precision``, ``tf32``, ``threads``), resolved once
    and checked against what a CPU learner cannot do (exit 2 before a run opens).

    ``cuda_graph: auto`` falls back to eager updates on the CPU; ``true`` there is an error, and so is
    ``precision: bf16`` (CPU bf16 autocast was never measured to help this learner: exit 2, not a guess).
    """
    placement = resolve_placement(cfg)
    if not placement.cuda:
        where = f"this learner runs on the CPU (learner.device: {cfg.device})"
        if cfg.cuda_graph is True:
            raise ConfigError(
                f"learner.cuda_graph: true needs a CUDA learner, but {where}; allowed here: auto "
                f"(graphs on CUDA, eager updates on the CPU) or false"
            )
        if placement.bf16:
            raise ConfigError(
                f"learner.precision: bf16 needs a CUDA learner, but {where}; allowed here: fp32"
            )
    return placement


class Learner:
    """``placement``: from :func:`learner_placement` (the pre-flight's, when it resolved one), else
    resolved here from ``cfg``; either way once."""

    def __init__(self, net: nn.Module, cfg: LearnerConfig, placement: Placement | None = None) -> None:
        self.cfg = cfg
        self.placement = placement or learner_placement(cfg)
        self.device = self.placement.device
        self.graphed = self.placement.cuda and cfg.cuda_graph is not False
        cuda = self.placement.cuda
        net = net.to(self.device)
        channels_last = prefers_channels_last(self.device) and any(p.dim() == 4 for p in net.parameters())
        if channels_last:  # 4-d (conv) weights only; torch's stubs omit this keyword
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.pair = TargetPair(net)
        self.params = list(self.pair.online.parameters())
        # One fused kernel per step instead of ~10 small ops per parameter (5x faster for small nets);
        # capturable keeps Adam's step counters on the GPU, as a graph needs.
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, fused=True, capturable=self.graphed)
        self.body = DQNUpdate(self.pair, self.optimizer, cfg, channels_last, self.placement.bf16)
        self.graph = (
            GraphedUpdate(self.body, lambda: self.optimizer.zero_grad(set_to_none=True))
            if self.graphed
            else None
        )
        self.stager = BatchStager(self.device) if cuda else None
        self.steps = 0

    @property
    def online(self) -> nn.Module:
        return self.pair.online

    def stage(self, batches: Sequence[SampledBatch]) -> Iterator[UpdateInputs]:
        """Each batch as update inputs, in order. On CUDA batch i+1's copy is started once the caller has
        queued update i (when it asks for the next item), so the copy overlaps that update."""
        if self.stager is None:
            yield from (host_inputs(b) for b in batches)
            return
        if not batches:
            return
        staged = self.stager.put(batches[0])
        for following in [*batches[1:], None]:
            yield staged  # the caller queues its update before asking for the next one
            if following is not None:
                staged = self.stager.put(following)

    def update(self, x: UpdateInputs) -> torch.Tensor:
        """One update; returns [B + 4] on the learner's device (|δ|, then the metrics), unread."""
        out = self.graph(x) if self.graph is not None else consume(x, lambda: self.body(x))
        self.steps += 1
        if self.cfg.target_update == "hard" and self.steps % self.cfg.target_every == 0:
            self.pair.sync(1.0)
        return out

    @staticmethod
    def to_host(outs: list[torch.Tensor]) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The results of several updates in one device→host transfer: (|δ| in batch order, metrics)."""
        if not outs:
            return np.zeros(0, np.float32), []
        host = torch.cat(outs).cpu().numpy()
        return unpack(host, [o.numel() - len(METRICS) for o in outs])

    def step(self, batch: SampledBatch) -> tuple[np.ndarray, dict[str, float]]:
        """One update, read back at once; returns |δ| for the replay's priorities and the step's metrics."""
        prio, metrics = self.to_host([self.update(x) for x in self.stage([batch])])
        return prio, metrics[0]

    def get_weights(self) -> np.ndarray:
        return get_flat_weights(self.pair.online)

    def describe(self) -> dict[str, Any]:
        """How it trains, resolved: for logs and the learner actor's ``info``."""
        return {
            "device": str(self.device),
            "cuda_graph": self.graphed,
            "precision": self.placement.precision,
            "channels_last": self.body.channels_last,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "online": self.pair.online.state_dict(),
            "target": self.pair.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pair.online.load_state_dict(state["online"])
        self.pair.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        # The checkpoint's param groups carry the writer's flags (a graphed GPU learner's capturable) and
        # its moments the writer's memory layout: this learner's own go back.
        restore_optimizer(self.optimizer)
        self.steps = int(state["steps"])
        if self.graph is not None:
            self.graph.reset()  # the optimizer's state tensors are new: capture them again
