"""Getting host batches onto the learner's GPU while the previous update runs.

A pageable host→device copy is synchronous and, for two uint8 [256, 4, 84, 84] stacks, costs about as
much as the update itself (DESIGN.md). :class:`BatchStager` packs each batch into page-locked (pinned)
buffers — s and s' as one [2B, ...] array, the five per-transition scalars as one [5, B] array — and
copies them on a side stream, into one of two device slots. The learner cycle stages batch i+1 right
after it has queued update i, so the copy engine moves i+1 while the GPU computes i, and the host fills
the pinned buffers meanwhile. Three events keep that honest:

- ``ready`` (per slot, recorded on the copy stream): the update waits for it before reading the slot;
- ``used`` (per slot, recorded on the compute stream by :func:`consume`): the next copy into that slot
  waits for it, so a copy never overwrites a batch an update has not read yet;
- the host waits on ``ready`` before it refills the pinned buffers of that slot (their last copy must
  have left them); with two slots that copy is two batches old and long finished.

On the CPU there are no streams: the buffers are plain, the copies synchronous and the events None, so
the same class can be checked there against :func:`~components.rl.dqn.update.host_inputs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from components.replay.batch import SampledBatch
from components.rl.dqn.update import SCALARS, UpdateInputs, pack_scalars

T = TypeVar("T")


@dataclass
class _Slot:
    host_obs: torch.Tensor  # [2B, *obs_shape] pinned on CUDA
    host_scalars: torch.Tensor  # [5, B] float32, pinned on CUDA
    obs: torch.Tensor  # the same on the device
    scalars: torch.Tensor
    ready: Any  # torch.cuda.Event or None
    used: Any


class BatchStager:
    """Batches into ``slots`` rotating device buffers through pinned host memory (see the module doc)."""

    def __init__(self, device: torch.device, slots: int = 2) -> None:
        self.device, self.n_slots = device, slots
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.slots: list[_Slot] = []
        self.key: tuple[Any, ...] | None = None
        self.turn = 0

    def _allocate(self, batch: SampledBatch) -> None:
        b, obs = len(batch.action), np.asarray(batch.obs)
        dtype = torch.from_numpy(np.empty(0, obs.dtype)).dtype
        obs_shape, n = (2 * b, *obs.shape[1:]), len(SCALARS)
        if self.slots and self.cuda:
            torch.cuda.synchronize(self.device)  # a new batch shape: nothing may still use the old slots

        def slot() -> _Slot:
            pin, host = self.cuda, torch.device("cpu")
            return _Slot(
                torch.empty(obs_shape, dtype=dtype, device=host, pin_memory=pin),
                torch.empty((n, b), dtype=torch.float32, device=host, pin_memory=pin),
                torch.empty(obs_shape, dtype=dtype, device=self.device),
                torch.empty((n, b), dtype=torch.float32, device=self.device),
                torch.cuda.Event() if self.cuda else None,
                torch.cuda.Event() if self.cuda else None,
            )

        self.slots = [slot() for _ in range(self.n_slots)]
        self.key, self.turn = (b, obs.shape[1:], obs.dtype), 0

    def put(self, batch: SampledBatch) -> UpdateInputs:
        """Start copying ``batch`` to the device; returns its slot's tensors and events (not yet ready)."""
        obs = np.asarray(batch.obs)
        if self.key != (len(batch.action), obs.shape[1:], obs.dtype):
            self._allocate(batch)
        s = self.slots[self.turn % self.n_slots]
        self.turn += 1
        if s.ready is not None:
            s.ready.synchronize()  # the pinned buffers' previous copy has left them
        b = len(batch.action)
        host = s.host_obs.numpy()
        host[:b], host[b:] = batch.obs, batch.next_obs
        pack_scalars(batch, out=s.host_scalars.numpy())
        if self.stream is None:
            s.obs.copy_(s.host_obs)
            s.scalars.copy_(s.host_scalars)
            return UpdateInputs(s.obs, s.scalars)
        with torch.cuda.stream(self.stream):
            self.stream.wait_event(s.used)  # the update two batches back has read this slot
            s.obs.copy_(s.host_obs, non_blocking=True)
            s.scalars.copy_(s.host_scalars, non_blocking=True)
            s.ready.record(self.stream)
        return UpdateInputs(s.obs, s.scalars, s.ready, s.used)


def consume(x: UpdateInputs, read: Callable[[], T]) -> T:
    """Run ``read`` (which reads ``x``'s tensors) on the current stream once ``x``'s copy has landed, then
    mark ``x``'s slot free for its next copy. CPU inputs carry no events: ``read`` just runs."""
    if x.ready is not None:
        torch.cuda.current_stream().wait_event(x.ready)
    out = read()
    if x.used is not None:
        x.used.record(torch.cuda.current_stream())
    return out
