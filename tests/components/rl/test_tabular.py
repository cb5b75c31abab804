from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from components.config import build
from components.rl.qlearning import QLearnConfig, QLearningTrainer
from components.rl.tabular import (
    bellman_backup,
    q_update,
    return_is_success,
    successful_terminal_reward,
    value_iteration,
)


def test_q_update_hand_worked():
    """Three transitions on a 3-state, 2-action table, α = 0.5, γ = 0.9, worked by hand."""
    q = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    # 1) s=0,a=0,r=1 → s'=1: target 1 + 0.9·max(2, 0) = 2.8; Q ← 0 + 0.5·(2.8 − 0) = 1.4
    assert q_update(q, 0, 0, 1.0, 1, False, alpha=0.5, gamma=0.9) == pytest.approx(2.8)
    assert q[0, 0] == pytest.approx(1.4)
    # 2) s=1,a=0,r=0 → s'=0: target 0.9·max(1.4, 1.0) = 1.26; Q ← 2 + 0.5·(1.26 − 2) = 1.63
    q_update(q, 1, 0, 0.0, 0, False, alpha=0.5, gamma=0.9)
    assert q[1, 0] == pytest.approx(1.63)
    # 3) terminal: s=0,a=1,r=−1 → no bootstrap: Q ← 1 + 0.5·(−1 − 1) = 0
    q_update(q, 0, 1, -1.0, 2, True, alpha=0.5, gamma=0.9)
    assert q[0, 1] == pytest.approx(0.0)
    np.testing.assert_allclose(q, [[1.4, 0.0], [1.63, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("slippery", [False, True])
def test_value_iteration_satisfies_bellman_optimality(slippery):
    env = gym.make("FrozenLake-v1", is_slippery=slippery)
    model = env.unwrapped.P
    q_star = value_iteration(model, 16, 4, gamma=0.95)
    assert np.max(np.abs(bellman_backup(q_star, model, 0.95) - q_star)) < 1e-8
    # Deterministic lake: the goal is 6 steps from the start, so V*(start) = γ^5 (reward on the 6th step).
    if not slippery:
        assert q_star[0].max() == pytest.approx(0.95**5)


def test_success_is_the_best_terminal_reward():
    assert successful_terminal_reward(gym.make("FrozenLake-v1").unwrapped.P) == 1.0
    assert successful_terminal_reward(gym.make("Taxi-v3").unwrapped.P) == 20.0


def test_the_success_rate_is_the_return_only_where_the_goal_pays_1_and_nothing_else_pays():
    assert return_is_success(gym.make("FrozenLake-v1").unwrapped.P)
    assert not return_is_success(gym.make("Taxi-v3").unwrapped.P)  # -1 a step, -10 a bad drop
    assert not return_is_success(gym.make("CliffWalking-v1").unwrapped.P)


def test_seeded_deterministic_frozenlake_converges_to_q_star():
    cfg = build(
        QLearnConfig,
        {
            "seed": 0,
            "env": {"id": "FrozenLake-v1", "kwargs": {"is_slippery": False}},
            "episodes": 1500,
            "gamma": 0.95,
            "epsilon": {"start": 1.0, "end": 0.3, "steps": 1000},
            "eval_every": 500,
        },
    )
    trainer = QLearningTrainer(cfg)
    while trainer.position < trainer.total:
        metrics = trainer.run_chunk()
    assert metrics["eval_return"] == 1.0
    assert "success_rate" not in metrics  # FrozenLake's return is its success: not reported twice
    assert np.max(np.abs(trainer.q - trainer.q_star)) < 0.05
    assert metrics["max_abs_q_error"] == pytest.approx(np.max(np.abs(trainer.q - trainer.q_star)))


def test_state_dict_round_trip_continues_training():
    cfg = build(QLearnConfig, {"env": {"id": "FrozenLake-v1"}, "episodes": 200, "eval_every": 100})
    a = QLearningTrainer(cfg)
    a.run_chunk()
    b = QLearningTrainer(cfg)
    b.load_state_dict(a.state_dict())
    assert b.position == 100 and np.array_equal(a.q, b.q)
