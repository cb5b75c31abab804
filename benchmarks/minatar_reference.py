"""The reference MinAtar DQN (Young & Tian 2019, MinAtar's ``examples/dqn.py``), written out plainly in
one process, as the baseline of ``bench_minatar.py``.

It shares nothing with adl but gymnasium's MinAtar envs (the same ids, sticky actions 0.1, difficulty
ramping), so a slip in adl cannot hide in it. The hyperparameters are the paper's:

- network: conv 16 3×3 stride 1 → ReLU → 128 → ReLU → one Q per action, on 0/1 frames [C, 10, 10];
- centred RMSProp, lr 2.5e-4, squared-gradient momentum α 0.95, eps 0.01; Huber (smooth L1) loss;
- replay 100,000 transitions, uniform, batch 32, one update per frame from 5,000 frames on;
- target network copied every 1,000 frames; γ 0.99; one-step max target (no Double DQN);
- ε = 1 for the first 5,000 frames (random), then linear 1 → 0.1 over 100,000 frames, then 0.1.

:func:`run` trains for a wall-clock budget and returns every episode's return with the frame and the
wall second (from ``t0``) at which it ended.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import minatar.gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BATCH_SIZE = 32
REPLAY_BUFFER_SIZE = 100_000
TARGET_NETWORK_UPDATE_FREQ = 1_000
TRAINING_FREQ = 1
REPLAY_START_SIZE = 5_000
FIRST_N_FRAMES = 100_000
END_EPSILON = 0.1
STEP_SIZE = 0.00025
SQUARED_GRAD_MOMENTUM = 0.95
MIN_SQUARED_GRAD = 0.01
GAMMA = 0.99


class QNetwork(nn.Module):
    def __init__(self, in_channels: int, num_actions: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1)
        self.fc_hidden = nn.Linear(16 * 8 * 8, 128)  # 10×10 → 8×8 after a 3×3 conv without padding
        self.output = nn.Linear(128, num_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x.float()))
        x = F.relu(self.fc_hidden(x.flatten(1)))
        return self.output(x)  # type: ignore[no-any-return]


class Replay:
    """A ring of (s, a, r, s', done), states kept as the env's booleans [C, 10, 10]."""

    def __init__(self, capacity: int, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.s = np.zeros((capacity, *shape), bool)
        self.s2 = np.zeros((capacity, *shape), bool)
        self.a = np.zeros(capacity, np.int64)
        self.r = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.at, self.rng = capacity, 0, 0, rng

    def add(self, s: np.ndarray, a: int, r: float, s2: np.ndarray, done: bool) -> None:
        i = self.at
        self.s[i], self.a[i], self.r[i], self.s2[i], self.done[i] = s, a, r, s2, done
        self.at = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size, n)
        return tuple(torch.from_numpy(x[idx]) for x in (self.s, self.a, self.r, self.s2, self.done))


def epsilon(frame: int) -> float:
    if frame < REPLAY_START_SIZE:
        return 1.0
    t = frame - REPLAY_START_SIZE
    return END_EPSILON if t >= FIRST_N_FRAMES else 1.0 + (END_EPSILON - 1.0) * t / FIRST_N_FRAMES


def run(
    game: str, budget_s: float, t0: float, seed: int = 0, replay_start: int = REPLAY_START_SIZE
) -> dict[str, Any]:
    """Train on ``MinAtar/<game>-v1`` until ``budget_s`` wall seconds after ``t0``."""
    if "MinAtar/Breakout-v1" not in gym.registry:
        minatar.gym.register_envs()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    env = gym.make(f"MinAtar/{game}-v1", sticky_action_prob=0.1, difficulty_ramping=True)
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    s = np.ascontiguousarray(obs.transpose(2, 0, 1))  # HWC → CHW
    policy = QNetwork(s.shape[0], n_actions)
    target = QNetwork(s.shape[0], n_actions)
    target.load_state_dict(policy.state_dict())
    opt = torch.optim.RMSprop(
        policy.parameters(), lr=STEP_SIZE, alpha=SQUARED_GRAD_MOMENTUM, centered=True, eps=MIN_SQUARED_GRAD
    )
    replay = Replay(REPLAY_BUFFER_SIZE, s.shape, rng)
    episodes: list[tuple[int, float, float]] = []  # (frame, wall s, return) at each episode's end
    frame, ep_return, updates = 0, 0.0, 0
    while time.time() - t0 < budget_s:
        eps = 1.0 if frame < replay_start else epsilon(frame - replay_start + REPLAY_START_SIZE)
        if rng.random() < eps:
            a = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                a = int(policy(torch.from_numpy(s).unsqueeze(0)).argmax(1).item())
        obs, r, terminated, truncated, _ = env.step(a)
        s2 = np.ascontiguousarray(obs.transpose(2, 0, 1))
        replay.add(s, a, float(r), s2, bool(terminated))
        ep_return += float(r)
        frame += 1
        if terminated or truncated:
            episodes.append((frame, time.time() - t0, ep_return))
            obs, _ = env.reset()
            s2, ep_return = np.ascontiguousarray(obs.transpose(2, 0, 1)), 0.0
        s = s2
        if frame >= replay_start and frame % TRAINING_FREQ == 0:
            bs, ba, br, bs2, bdone = replay.sample(BATCH_SIZE)
            with torch.no_grad():
                q_next = target(bs2).max(1).values
                y = br + GAMMA * (1.0 - bdone) * q_next
            q = policy(bs).gather(1, ba.unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            updates += 1
        if frame % TARGET_NETWORK_UPDATE_FREQ == 0:
            target.load_state_dict(policy.state_dict())
    return {"frames": frame, "updates": updates, "wall_s": time.time() - t0, "episodes": episodes}
