from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from components.config import load
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.evaluator import Evaluator


class _Always(nn.Module):
    """A 'Q-network' whose greedy action is always ``action``; tracks the mode it was called in."""

    def __init__(self, action: int) -> None:
        super().__init__()
        self.action = action
        self.modes: list[bool] = []

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        q = torch.zeros(obs.shape[0], 2)
        q[:, self.action] = 1.0
        return q


@pytest.mark.parametrize("action", [0, 1])
def test_mean_return_matches_single_env_rollouts(action):
    cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", ["eval.episodes=3"])
    evaluator = Evaluator(cfg)
    net = _Always(action)
    result = evaluator.run(net, torch.device("cpu"))
    # Reference: each copy i is seeded seed + i; push the cart one way until the pole falls.
    returns = []
    for i in range(3):
        env = gym.make("CartPole-v1")
        env.reset(seed=evaluator.seed + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    assert result == pytest.approx(np.mean(returns))
    assert net.training and not any(net.modes)  # evaluated in eval mode, mode restored after


@pytest.mark.parametrize(("dueling", "seed"), [(False, 0), (True, 4)])
def test_mlp_numpy_path_gives_the_torch_paths_returns(dueling, seed):
    """An MLP scores the same through NumpyMLP as through torch, on every episode of the batch."""
    from components.rl.dqn.networks import build_q_network

    cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", ["eval.episodes=4", f"network.dueling={dueling}"])
    torch.manual_seed(seed)  # seeds whose random nets act on the state: a constant action scores ~9.5
    net = build_q_network(cfg.network, (4,), 2)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)

    class TorchOnly(nn.Module):  # the same function, hidden from the evaluator's numpy path
        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.inner(obs)

    numpy_result = Evaluator(cfg).run(net, torch.device("cpu"))
    torch_result = Evaluator(cfg).run(TorchOnly(), torch.device("cpu"))
    assert numpy_result == torch_result
    assert 15.0 < numpy_result < 500.0
