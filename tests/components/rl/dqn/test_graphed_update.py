"""The learner on CUDA: the update replayed as a CUDA graph against the same update run eagerly, bf16
and channels-last, and checkpoints of a graphed learner on the CPU (staging: ``test_staging.py``).

Every test here needs a GPU (``@pytest.mark.cuda``; skipped where torch sees none). Tolerances: both
learners run the same kernels in the same order, but cuDNN/cuBLAS may pick other algorithms (or
atomics) between an eager run and a captured one, so parameters are compared within rtol 1e-4,
atol 1e-5 after 12 updates (3 warm-up updates, the captured one, 8 replays), with TF32 off.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from components.nets.qnets import MLPQNetwork, NatureCNN
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.cycle import learner_cycle
from components.rl.dqn.learner import Learner

pytestmark = pytest.mark.cuda
K, B = 12, 32
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _batches(kind: str, k: int = K, b: int = B, seed: int = 0) -> list[SampledBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k):
        if kind == "mlp":
            obs, nxt = (rng.normal(size=(b, 4)).astype(np.float32) for _ in range(2))
        else:
            obs, nxt = (rng.integers(0, 256, (b, 4, 84, 84)).astype(np.uint8) for _ in range(2))
        out.append(
            SampledBatch(
                obs,
                rng.integers(0, 6, b),
                rng.normal(size=b).astype(np.float32),
                nxt,
                rng.random(b) < 0.1,
                rng.integers(1, 4, b).astype(np.uint8),
                np.arange(i * b, (i + 1) * b),
                rng.uniform(0.2, 1.0, b).astype(np.float32),
            )
        )
    return out


def _learner(kind: str, **kw) -> Learner:
    torch.manual_seed(0)
    net: nn.Module = (
        MLPQNetwork(4, 6, hidden=(128,), head_hidden=128) if kind == "mlp" else NatureCNN(4, (84, 84), 6)
    )
    return Learner(net, LearnerConfig(**{"lr": 1e-3, "device": "cuda", "tf32": False, **kw}))


class _Source:
    def __init__(self, batches: list[SampledBatch]) -> None:
        self.batches, self.prio = batches, []

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        return self.batches[:count]

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.prio.append(priorities)


def _assert_same_nets(a: Learner, b: Learner) -> None:
    for net_a, net_b in ((a.online, b.online), (a.pair.target, b.pair.target)):
        for (name, x), y in zip(net_a.state_dict().items(), net_b.state_dict().values()):
            torch.testing.assert_close(x, y, **TOL, msg=name)


@pytest.mark.parametrize(
    "kind,target",
    [
        ("mlp", {"target_every": 5}),
        ("mlp", {"target_update": "soft", "tau": 0.05}),
        ("cnn", {"target_every": 5}),
    ],
)
def test_graphed_and_eager_updates_give_the_same_parameters_after_k_updates(kind, target):
    graphed, eager = _learner(kind, cuda_graph=True, **target), _learner(kind, cuda_graph=False, **target)
    batches = _batches(kind)
    src_g, src_e = _Source(batches), _Source(batches)
    for start in range(0, K, 4):  # three calls of 4 batches: warm-up, capture, replays across calls
        src_g.batches = src_e.batches = batches[start : start + 4]
        learner_cycle(graphed, src_g, 4, 0.4, 1000, lambda: None)
        learner_cycle(eager, src_e, 4, 0.4, 1000, lambda: None)
    assert graphed.graph is not None and graphed.graph.captured and eager.graph is None
    assert graphed.steps == eager.steps == K
    for p, q in zip(src_g.prio, src_e.prio):
        np.testing.assert_allclose(p, q, **TOL)
    _assert_same_nets(graphed, eager)


def test_a_batch_of_another_shape_runs_eagerly_and_the_graph_carries_on():
    graphed, eager = _learner("mlp", cuda_graph=True), _learner("mlp", cuda_graph=False)
    batches = _batches("mlp", k=6)
    odd = _batches("mlp", k=1, b=7, seed=3)[0]
    for learner in (graphed, eager):
        for b in batches[:5]:
            learner.step(b)
        learner.step(odd)
        learner.step(batches[5])
    assert graphed.graph is not None and graphed.graph.captured
    _assert_same_nets(graphed, eager)


def test_bf16_and_channels_last_train_the_cnn():
    learner = _learner("cnn", precision="bf16", target_every=1000)
    assert learner.describe()["channels_last"] and learner.describe()["cuda_graph"]
    batch = _batches("cnn", k=1)[0]
    losses = [learner.step(batch)[1]["loss"] for _ in range(30)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses[::5]


def test_a_graphed_learners_checkpoint_restores_on_the_cpu_and_back():
    graphed = _learner("cnn", cuda_graph=True)
    batches = _batches("cnn", k=8)
    for b in batches[:6]:
        graphed.step(b)
    buffer = io.BytesIO()
    torch.save(graphed.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)

    torch.manual_seed(0)
    cpu = Learner(NatureCNN(4, (84, 84), 6), LearnerConfig(lr=1e-3, device="cpu"))
    cpu.load_state_dict(state)
    assert cpu.steps == 6 and all(not g["capturable"] for g in cpu.optimizer.param_groups)
    for x, y in zip(graphed.online.state_dict().values(), cpu.online.state_dict().values()):
        torch.testing.assert_close(x.cpu(), y, rtol=0, atol=0)
    prio, metrics = cpu.step(batches[6])  # it trains where it now lives
    assert prio.shape == (B,) and np.isfinite(metrics["loss"])

    back = _learner("cnn", cuda_graph=True)
    back.load_state_dict(state)  # a fresh graph is warmed up and captured on the restored state
    for b in batches[6:]:
        np.testing.assert_allclose(back.step(b)[0], graphed.step(b)[0], **TOL)
    _assert_same_nets(back, graphed)
