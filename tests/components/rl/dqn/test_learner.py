from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from components.config import ConfigError
from components.nets.qnets import MLPQNetwork
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import get_flat_weights


def _batch() -> SampledBatch:
    """Four hand-made transitions on 2-d observations, 2 actions; one terminal, one 1-step window."""
    obs = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [-1.0, 0.2]], dtype=np.float32)
    next_obs = np.array([[1.0, 1.0], [0.0, 0.0], [0.2, 0.9], [-0.5, 0.0]], dtype=np.float32)
    return SampledBatch(
        obs=obs,
        action=np.array([0, 1, 1, 0]),
        reward=np.array([1.0, 0.0, 2.71, -1.0], dtype=np.float32),
        next_obs=next_obs,
        done=np.array([False, True, False, False]),
        n=np.array([3, 2, 3, 1], np.uint8),
        slots=np.arange(4),
        weight=np.array([1.0, 0.5, 0.8, 1.0], dtype=np.float32),
    )


def _learner(**kw) -> Learner:
    torch.manual_seed(0)
    net = MLPQNetwork(2, 2, hidden=(16,), head_hidden=16, dueling=True)
    cfg = LearnerConfig(**{"lr": 1e-2, "gamma": 0.9, "device": "cpu", "target_every": 1000, **kw})
    return Learner(net, cfg)


def test_returned_td_is_y_minus_q_computed_before_the_step():
    learner = _learner()
    b = _batch()
    with torch.no_grad():  # the Double-DQN target, computed independently of the learner's code path
        on, tg = learner.online, learner.pair.target
        q = on(torch.as_tensor(b.obs))[np.arange(4), b.action].numpy()
        a_star = on(torch.as_tensor(b.next_obs)).argmax(1).numpy()
        boot = tg(torch.as_tensor(b.next_obs))[np.arange(4), a_star].numpy()
    y = b.reward + 0.9 ** b.n.astype(np.float64) * (1 - b.done) * boot
    abs_td, metrics = learner.step(b)
    np.testing.assert_allclose(abs_td, np.abs(y - q), rtol=1e-5, atol=1e-6)
    assert metrics["mean_q"] == pytest.approx(q.mean(), abs=1e-6)
    assert metrics["mean_abs_td"] == pytest.approx(np.abs(y - q).mean(), abs=1e-6)
    assert learner.steps == 1


def test_loss_decreases_on_a_repeated_batch():
    learner = _learner()
    b = _batch()
    losses = [learner.step(b)[1]["loss"] for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    assert all(np.isfinite(losses))


def test_hard_target_sync_exactly_every_target_every_steps():
    learner = _learner(target_every=3)
    b = _batch()
    target = get_flat_weights(learner.pair.target)
    for step in range(1, 10):
        learner.step(b)
        online, now = get_flat_weights(learner.online), get_flat_weights(learner.pair.target)
        if step % 3 == 0:
            np.testing.assert_array_equal(now, online)
            target = now
        else:
            np.testing.assert_array_equal(now, target)  # untouched between syncs
            assert not np.array_equal(now, online)


def test_soft_target_update_is_polyak_every_step():
    learner = _learner(target_update="soft", tau=0.25)
    before = get_flat_weights(learner.pair.target)
    learner.step(_batch())
    online = get_flat_weights(learner.online)
    np.testing.assert_allclose(
        get_flat_weights(learner.pair.target), 0.25 * online + 0.75 * before, atol=1e-7
    )


def test_state_dict_round_trip_resumes_identically():
    a, b = _learner(), _learner()
    batch = _batch()
    for _ in range(3):
        a.step(batch)
    # Through bytes, as a checkpoint travels: torch's optimizer state dict holds live references, and
    # Optimizer.load_state_dict keeps them, so two learners in one process would share Adam's moments.
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    td_a, _ = a.step(batch)
    td_b, _ = b.step(batch)
    np.testing.assert_array_equal(td_a, td_b)
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())


@pytest.mark.parametrize(
    "options,needle",
    [
        ({"cuda_graph": True}, "learner.cuda_graph: true needs a CUDA learner"),
        ({"precision": "bf16"}, "learner.precision: bf16 needs a CUDA learner"),
    ],
)
def test_gpu_only_options_on_a_cpu_learner_are_refused_naming_key_value_and_allowed(options, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        _learner(**options)
    assert "allowed here:" in str(err.value)


def test_cuda_graph_auto_falls_back_to_eager_updates_on_the_cpu():
    learner = _learner(cuda_graph="auto")
    assert learner.describe() == {
        "device": "cpu",
        "cuda_graph": False,
        "precision": "fp32",
        "channels_last": False,
    }
    assert learner.graph is None and learner.stager is None
    assert all(not g["capturable"] for g in learner.optimizer.param_groups)


def test_a_checkpoint_of_a_graphed_learner_loads_into_a_cpu_learner():
    """A graphed GPU learner's optimizer groups say capturable=True; a CPU learner keeps its own flag
    (capturable Adam refuses CPU tensors) and then trains as the writer would have."""
    a, b = _learner(), _learner()
    batch = _batch()
    a.step(batch)
    state = a.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    written = torch.load(buffer)
    for group in written["optimizer"]["param_groups"]:
        group["capturable"] = True  # as a graphed learner writes them
    b.load_state_dict(written)
    assert all(g["capturable"] is False and g["fused"] is True for g in b.optimizer.param_groups)
    td_a, _ = a.step(batch)
    td_b, _ = b.step(batch)
    np.testing.assert_array_equal(td_a, td_b)
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())


def test_adam_moments_written_channels_last_by_a_gpu_learner_train_right_on_the_cpu():
    """A CUDA learner keeps conv weights channels-last, so its checkpoint's Adam moments are laid out
    so; fused Adam on a CPU learner (NCHW weights) would update the wrong elements with them. Loaded,
    the moments take their parameter's layout and the next step equals one from NCHW moments."""
    from components.nets.qnets import NatureCNN

    def cnn_learner() -> Learner:
        torch.manual_seed(0)
        return Learner(NatureCNN(4, (36, 36), 2, head_hidden=16), LearnerConfig(lr=1e-2, device="cpu"))

    rng = np.random.default_rng(0)
    frames = SampledBatch(
        rng.integers(0, 256, (8, 4, 36, 36)).astype(np.uint8),
        rng.integers(0, 2, 8),
        rng.normal(size=8).astype(np.float32),
        rng.integers(0, 256, (8, 4, 36, 36)).astype(np.uint8),
        np.zeros(8, bool),
        np.full(8, 3, np.uint8),
        np.arange(8),
        np.ones(8, np.float32),
    )
    writer = cnn_learner()
    writer.step(frames)
    state = writer.state_dict()
    as_gpu_wrote = io.BytesIO()
    torch.save(state, as_gpu_wrote)
    for moments in state["optimizer"]["state"].values():  # the layout a channels-last learner writes
        for k, v in moments.items():
            if torch.is_tensor(v) and v.dim() == 4:
                moments[k] = v.contiguous(memory_format=torch.channels_last)
    channels_last = io.BytesIO()
    torch.save(state, channels_last)
    a, b = cnn_learner(), cnn_learner()
    for learner, buffer in ((a, as_gpu_wrote), (b, channels_last)):
        buffer.seek(0)
        learner.load_state_dict(torch.load(buffer))
    for p in b.params:
        for v in b.optimizer.state[p].values():
            if torch.is_tensor(v) and v.shape == p.shape:
                assert v.stride() == p.stride()
    a.step(frames)
    b.step(frames)
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())
