"""The collectors' numpy MLP against the torch network it stands in for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from components.rl.dqn.config import NetworkConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights
from components.rl.dqn.numpy_q import NumpyQNetwork

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("dueling", [True, False])
@pytest.mark.parametrize("hidden", [[64], [32, 48]])
def test_numpy_q_network_computes_the_torch_networks_q_values_from_its_flat_weights(dueling, hidden):
    cfg = NetworkConfig(hidden=hidden, head_hidden=24, dueling=dueling)
    torch.manual_seed(0)
    net = build_q_network(cfg, (6,), 3)
    flat = get_flat_weights(net)
    q = NumpyQNetwork(cfg, 6, 3, seed=1)
    assert q.size == flat.size  # the same layout, entry for entry
    q.set_weights(flat)
    np.testing.assert_array_equal(q.get_weights(), flat)
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(q(x), net(torch.as_tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs"):
        q.set_weights(flat[:-1])


def test_its_initial_weights_follow_torchs_linear_init_bounds():
    cfg = NetworkConfig(hidden=[64], head_hidden=32, dueling=True)
    q = NumpyQNetwork(cfg, 4, 2, seed=3)
    for w, b in q.body + q.value + q.advantage:
        bound = 1 / np.sqrt(w.shape[1])
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound and w.std() > bound / 3
    assert not np.array_equal(q.get_weights(), NumpyQNetwork(cfg, 4, 2, seed=4).get_weights())


def test_a_collector_on_vector_observations_never_imports_torch():
    code = (
        "import sys\n"
        "from components.config import load\n"
        "from components.rl.dqn.collector import Collector\n"
        "cfg = load(__import__('components.rl.dqn.config', fromlist=['DQNConfig']).DQNConfig,\n"
        "           'configs/dqn/cartpole.yaml', ['collectors.envs_per_collector=2'])\n"
        "c = Collector(cfg, 0, (4,), 2)\n"
        "batch, stats = c.run(50)\n"
        "print(len(batch) > 0, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr
