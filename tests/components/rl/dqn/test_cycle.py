"""The learner cycle against k separate steps of the learner as it was (one step, one read-back each):
on the CPU the same priorities in the same order, the same parameters, the same publishes; the k
updates read nothing back to the host; staged (double-buffered) inputs train exactly as plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from components.nets.qnets import MLPQNetwork, NatureCNN
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.cycle import learner_cycle
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import get_flat_weights
from components.rl.dqn.staging import BatchStager
from components.rl.dqn.targets import dqn_loss, td_target
from components.rl.dqn.update import host_inputs

K, B = 6, 16


def _batches(kind: str, seed: int = 0) -> list[SampledBatch]:
    """K random batches as the replay samples them (CartPole-like vectors, or uint8 frame stacks)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(K):
        if kind == "mlp":
            obs, nxt = (rng.normal(size=(B, 4)).astype(np.float32) for _ in range(2))
        else:
            obs, nxt = (rng.integers(0, 256, (B, 4, 36, 36)).astype(np.uint8) for _ in range(2))
        out.append(
            SampledBatch(
                obs,
                rng.integers(0, 3, B),
                rng.normal(size=B).astype(np.float32),
                nxt,
                rng.random(B) < 0.2,
                rng.integers(1, 4, B).astype(np.uint8),
                np.arange(i * B, (i + 1) * B)[::-1].copy(),  # slots in a non-sorted order
                rng.uniform(0.2, 1.0, B).astype(np.float32),
            )
        )
    return out


def _learner(kind: str, **kw) -> Learner:
    torch.manual_seed(0)
    net: nn.Module = (
        MLPQNetwork(4, 3, hidden=(32,), head_hidden=16)
        if kind == "mlp"
        else NatureCNN(4, (36, 36), 3, head_hidden=32)
    )
    return Learner(net, LearnerConfig(**{"lr": 1e-2, "device": "cpu", "grad_clip": 1.0, **kw}))


def _old_step(learner: Learner, batch: SampledBatch) -> tuple[np.ndarray, dict[str, float]]:
    """The learner's step before device-resident results: tensors per field, four reads per step."""
    cfg, pair = learner.cfg, learner.pair
    obs, next_obs = torch.as_tensor(batch.obs), torch.as_tensor(batch.next_obs)
    action = torch.as_tensor(batch.action).long()
    q_all = pair.online(torch.cat([obs, next_obs]))
    q, next_q_online = q_all[:B], q_all[B:].detach()
    with torch.no_grad():
        next_q_target = pair.target(next_obs)
        target = td_target(
            torch.as_tensor(batch.reward).float(),
            torch.as_tensor(batch.done).float(),
            torch.as_tensor(batch.n).float(),
            next_q_online,
            next_q_target,
            cfg.gamma,
            cfg.double,
        )
    q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
    loss, td = dqn_loss(q_taken, target, torch.as_tensor(batch.weight).float(), cfg.huber_delta)
    learner.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(learner.params, cfg.grad_clip, foreach=True)
    learner.optimizer.step()
    learner.steps += 1
    if cfg.target_update == "soft":
        pair.sync(cfg.tau)
    elif learner.steps % cfg.target_every == 0:
        pair.sync(1.0)
    abs_td = td.abs().cpu().numpy()
    return abs_td, {
        "loss": float(loss.detach()),
        "mean_q": float(q_taken.detach().mean()),
        "mean_abs_td": float(abs_td.mean()),
        "grad_norm": float(grad_norm),
    }


class _Source:
    def __init__(self, batches: list[SampledBatch]) -> None:
        self.batches, self.updates = batches, []

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        assert count == len(self.batches)
        return self.batches

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.updates.append((idx, priorities))


@pytest.mark.parametrize(
    "kind,target",
    [
        ("mlp", {"target_every": 3}),
        ("mlp", {"target_update": "soft", "tau": 0.3}),
        ("cnn", {"target_every": 2}),
    ],
)
def test_cycle_gives_the_priorities_order_parameters_and_publishes_of_k_separate_steps(kind, target):
    batches = _batches(kind)
    old, new = _learner(kind, **target), _learner(kind, **target)
    expected_prio, expected_metrics, expected_published = [], [], []
    for b in batches:
        p, m = _old_step(old, b)
        expected_prio.append(p)
        expected_metrics.append(m)
        if old.steps % 4 == 0:
            expected_published.append(old.get_weights())
    source, published = _Source(batches), []
    metrics = learner_cycle(new, source, K, 0.4, 4, lambda: published.append(new.get_weights()))

    assert len(source.updates) == 1  # one priority update for the whole call
    idx, prio = source.updates[0]
    np.testing.assert_array_equal(idx, np.concatenate([b.slots for b in batches]))
    np.testing.assert_array_equal(prio, np.concatenate(expected_prio))  # bit for bit, in batch order
    for a, b in zip(new.state_dict()["online"].values(), old.state_dict()["online"].values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(get_flat_weights(new.pair.target), get_flat_weights(old.pair.target))
    assert new.steps == old.steps == K
    assert len(published) == len(expected_published) == 1  # after step 4 of 6
    np.testing.assert_array_equal(published[0], expected_published[0])
    for got, want in zip(metrics, expected_metrics):
        for name in ("loss", "mean_q", "grad_norm"):
            assert got[name] == want[name], name
        assert got["mean_abs_td"] == pytest.approx(want["mean_abs_td"], rel=1e-6)


class _CountHostReads(TorchDispatchMode):
    """Counts aten._local_scalar_dense: what float(t), t.item() and bool(t) dispatch to."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def test_the_k_updates_of_a_cycle_read_no_scalar_back_to_the_host():
    learner, batches = _learner("mlp", target_every=2), _batches("mlp")
    with _CountHostReads() as counter:
        outs = [learner.update(x) for x in learner.stage(batches)]
        during = counter.reads
        float(outs[0][0])  # the counter does see a read
    assert during == 0 and counter.reads == 1
    prio, metrics = learner.to_host(outs)
    assert prio.shape == (K * B,) and len(metrics) == K and all(np.isfinite(m["loss"]) for m in metrics)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_inputs_staged_through_rotating_buffers_train_exactly_as_the_plain_ones(kind):
    """The stager's packing ([2B, ...] observations, [5, B] scalars) and its two reused slots: after
    K updates (each slot refilled three times) the same priorities and parameters as host_inputs."""
    batches = _batches(kind, seed=1)
    plain, staged = _learner(kind), _learner(kind)
    stager = BatchStager(torch.device("cpu"))
    want = [plain.update(host_inputs(b)) for b in batches]
    got = []
    for b in batches:
        x = stager.put(b)
        ref = host_inputs(b)
        torch.testing.assert_close(x.obs_pair, ref.obs_pair, rtol=0, atol=0)
        torch.testing.assert_close(x.scalars, ref.scalars, rtol=0, atol=0)
        got.append(staged.update(x))
    assert stager.turn == K and len(stager.slots) == 2
    np.testing.assert_array_equal(staged.to_host(got)[0], plain.to_host(want)[0])
    np.testing.assert_array_equal(staged.get_weights(), plain.get_weights())


def test_scalars_pack_actions_and_window_lengths_exactly():
    b = _batches("mlp")[0]
    x = host_inputs(b)
    np.testing.assert_array_equal(x.scalars[0].long().numpy(), b.action)
    np.testing.assert_array_equal(x.scalars[2].numpy(), b.done.astype(np.float32))
    np.testing.assert_array_equal(x.scalars[3].numpy(), b.n.astype(np.float32))
    np.testing.assert_array_equal(x.obs_pair.numpy(), np.concatenate([b.obs, b.next_obs]))


def test_a_cpu_learner_creates_nothing_on_torchs_default_device():
    """Every tensor of a CPU update is made on the CPU explicitly (with a meta default device any that
    is not has no data): the cycle still trains and reads finite numbers back."""
    learner, batches = _learner("mlp"), _batches("mlp")  # the network is built before
    torch.set_default_device("meta")
    try:
        metrics = learner_cycle(learner, _Source(batches), K, 0.4, 1000, lambda: None)
    finally:
        torch.set_default_device(None)
    assert len(metrics) == K and all(np.isfinite(m["loss"]) for m in metrics)
