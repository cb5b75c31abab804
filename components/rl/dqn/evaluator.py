"""Greedy evaluation (ε = 0, or ``eval.epsilon``) on separate envs, all episodes stepped together as
one vector env.

An MLP on the CPU is evaluated with :class:`~components.nets.qnets.NumpyMLP`, as the collectors
act: at a handful of observations per step torch's per-operator overhead is most of the cost, and
the evaluation runs in the learner's process, between its updates.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from components.nets.qnets import MLPQNetwork, NumpyMLP
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import vector_env


class Evaluator:
    def __init__(self, cfg: DQNConfig) -> None:
        self.episodes = cfg.eval.episodes
        seed = 1_000_000 + cfg.seed * 100
        self.envs = vector_env(cfg, self.episodes, seed, gym.vector.AutoresetMode.NEXT_STEP)
        self.seed = seed
        self.calls = 0
        self.epsilon = cfg.eval.epsilon
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def run(self, net: nn.Module, device: torch.device) -> float:
        """Mean return over ``episodes`` greedy episodes, each on its own env copy and seed; with
        ``eval.epsilon`` > 0 each step acts at random with that probability."""
        was_training = net.training
        net.eval()
        obs: Any
        obs, _ = self.envs.reset(seed=self.seed + 1000 * self.calls)
        self.calls += 1
        returns = np.zeros(self.episodes)
        alive = np.ones(self.episodes, dtype=bool)
        numpy_policy = NumpyMLP(net) if isinstance(net, MLPQNetwork) and device.type == "cpu" else None
        while alive.any():
            if numpy_policy is not None:
                actions = numpy_policy(obs).argmax(axis=1)
            else:
                actions = net(torch.as_tensor(obs).to(device)).argmax(dim=1).cpu().numpy()
            if self.epsilon > 0:
                n_actions = int(self.envs.single_action_space.n)  # type: ignore[attr-defined]
                explore = self.rng.random(self.episodes) < self.epsilon
                actions = np.where(explore, self.rng.integers(0, n_actions, self.episodes), actions)
            obs, rewards, terminated, truncated, _ = self.envs.step(actions)  # type: ignore[assignment,var-annotated]
            returns += rewards * alive  # a finished copy auto-resets on its next step; masked out here
            alive &= ~(terminated | truncated)
        net.train(was_training)
        return float(returns.mean())
