"""Batches staged for the learner: on CUDA through pinned buffers and a side-stream copy into two
reused device slots, on the CPU through the same slots with plain copies. Each update must read
exactly its own batch; compared bit for bit (a float32 sum of ~1.8M bytes, ~2.3e8, is not exact:
float32 steps are 16 apart there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.replay.batch import SampledBatch
from components.rl.dqn.staging import BatchStager, consume

DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.cuda)]


def _frame_batches(k: int, b: int = 32) -> list[SampledBatch]:
    rng = np.random.default_rng(0)
    return [
        SampledBatch(
            rng.integers(0, 256, (b, 4, 84, 84)).astype(np.uint8),
            rng.integers(0, 6, b),
            rng.normal(size=b).astype(np.float32),
            rng.integers(0, 256, (b, 4, 84, 84)).astype(np.uint8),
            rng.random(b) < 0.1,
            rng.integers(1, 4, b).astype(np.uint8),
            np.arange(i * b, (i + 1) * b),
            rng.uniform(0.2, 1.0, b).astype(np.float32),
        )
        for i in range(k)
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_staging_delivers_every_batch_intact(device: str) -> None:
    """Six batches through two slots, each read by an update queued before the next copy is started
    (the events keep a copy from overwriting a slot still being read)."""
    dev = torch.device(device)
    stager = BatchStager(dev)
    batches = _frame_batches(6)
    seen = []
    for b in batches:
        x = stager.put(b)
        assert x.obs_pair.device.type == dev.type
        # What the update reads, checksummed exactly (int64) on the device, then copied as it was.
        seen.append(
            consume(x, lambda x=x: (x.obs_pair.sum(dtype=torch.int64), x.obs_pair.clone(), x.scalars.clone()))
        )
    for b, (total, pair, scalars) in zip(batches, seen):
        both = np.concatenate([b.obs, b.next_obs])
        assert total.item() == int(both.astype(np.int64).sum())
        np.testing.assert_array_equal(pair.cpu().numpy(), both)
        np.testing.assert_array_equal(scalars[0].long().cpu().numpy(), b.action)
        np.testing.assert_array_equal(scalars[4].cpu().numpy(), b.weight)
    assert stager.slots[0].host_obs.is_pinned() == (dev.type == "cuda")
