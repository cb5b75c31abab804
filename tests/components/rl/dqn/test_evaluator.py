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
