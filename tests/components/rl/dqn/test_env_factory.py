from __future__ import annotations

import numpy as np
import pytest

from components.config import ConfigError, load
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import check_spaces, vector_env


def test_cartpole_spaces_and_same_step_autoreset():
    cfg = load(DQNConfig, "configs/dqn/cartpole.yaml")
    assert check_spaces(cfg) == ((4,), np.dtype(np.float32), 2)
    envs = vector_env(cfg, 2, seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4)
    for _ in range(200):  # always push left: every episode ends within a few dozen steps
        obs, _, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64))
        if term.any():
            e = int(np.flatnonzero(term)[0])
            # SAME_STEP: the returned obs is already the reset one; the final one is in info
            assert info["final_obs"][e].shape == (4,) and not np.array_equal(info["final_obs"][e], obs[e])
            assert abs(obs[e]).max() <= 0.05  # CartPole resets uniformly in ±0.05
            break
    else:
        pytest.fail("no episode ended")
    envs.close()


def test_pixel_env_with_an_mlp_is_refused():
    cfg = load(DQNConfig, None, ["env.id=ALE/Pong-v5", "atari.enabled=true", "network.kind=mlp"])
    with pytest.raises(ConfigError, match="network.kind: cnn"):
        check_spaces(cfg)


def test_atari_stack_shape():
    cfg = load(DQNConfig, None, ["env.id=ALE/Pong-v5", "atari.enabled=true", "network.kind=cnn"])
    shape, dtype, n_actions = check_spaces(cfg)
    assert shape == (4, 84, 84) and dtype == np.uint8 and n_actions == 6


@pytest.mark.parametrize("config", ["configs/dqn/pong.yaml", "configs/dqn/pong_gpu.yaml"])
def test_a_pong_game_runs_to_21_points_not_to_a_time_limit(config):
    """The TimeLimit counts emulator frames under the frame skip: with the default 1,000 a game was cut
    after 250 agent steps (return around -2), where +18 cannot be reached. A random policy loses a whole
    game: one side reaches 21, and the episode terminates rather than being truncated."""
    from components.rl.dqn.env_factory import env_fn

    env = env_fn(load(DQNConfig, config, ["learner.device=cpu", "collectors.inference=local"]), 0)()
    env.reset(seed=0)
    total, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        total, steps = total + float(reward), steps + 1
    env.close()
    assert terminated and not truncated, (steps, total)
    assert steps > 250 and total <= -1  # 21 points to the opponent, fewer to the random player
