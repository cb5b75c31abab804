"""BatchedQ (what the shared inference actor computes with) against a collector's own inference: the
same Q-values and greedy actions for every request of a concatenated batch, batch norm folded."""

from __future__ import annotations

import numpy as np
import torch

from components.config import load
from components.nets.qnets import NumpyMLP, inference_copy
from components.rl.dqn.batched_inference import BatchedQ
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights

CARTPOLE, PONG = "configs/dqn/cartpole.yaml", "configs/dqn/pong.yaml"


def _trained_like(net: torch.nn.Module) -> np.ndarray:
    """Weights off their initialisation, BN statistics included (as a learner publishes them)."""
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1)
    return get_flat_weights(net)


def test_requests_of_several_collectors_get_the_q_values_of_local_inference_mlp():
    cfg = load(DQNConfig, CARTPOLE)
    torch.manual_seed(1)
    net = build_q_network(cfg.network, (4,), 2)
    flat = _trained_like(net)
    batched = BatchedQ(cfg, (4,), 2, torch.device("cpu"))
    batched.set_weights(flat)
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=(n, 4)).astype(np.float32) for n in (8, 3, 8, 1)]
    answers = batched(requests)
    local = NumpyMLP(net)  # how a CartPole collector acts
    assert [a.shape for a in answers] == [(8, 2), (3, 2), (8, 2), (1, 2)]
    for obs, q in zip(requests, answers):
        np.testing.assert_allclose(q, local(obs), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(q.argmax(1), local(obs).argmax(1))
    assert (batched.requests, batched.batches) == (4, 1)


def test_requests_get_the_q_values_of_local_inference_cnn_with_folded_batch_norm():
    cfg = load(DQNConfig, PONG, ["network.batch_norm=true"])
    shape = (4, 36, 36)
    torch.manual_seed(2)
    net = build_q_network(cfg.network, shape, 6)
    flat = _trained_like(net)
    batched = BatchedQ(cfg, shape, 6, torch.device("cpu"))
    batched.set_weights(flat)
    local = inference_copy(net)  # how a Pong collector acts
    rng = np.random.default_rng(1)
    requests = [rng.integers(0, 256, (n, *shape)).astype(np.uint8) for n in (4, 2, 4)]
    for obs, q in zip(requests, batched(requests)):
        with torch.no_grad():
            want = local(torch.as_tensor(obs)).numpy()
        np.testing.assert_allclose(q, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(q.argmax(1), want.argmax(1))
