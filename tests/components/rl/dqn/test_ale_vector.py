"""``atari.backend: ale_vector`` against the gymnasium backend: the same stacks, rewards and episode
ends for the same seeds and actions, in both autoreset modes (the collectors' same-step, the
evaluator's next-step), through episode ends (a 40-frame time limit: an end every 10 agent steps).
No-op starts are off and sticky actions zero so that both sides are deterministic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from components.config import ConfigError, load
from components.rl.dqn.ale_vector import game_name
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import check_spaces, env_fn, vector_env

PONG = [
    "env.id=ALE/Pong-v5",
    "atari.enabled=true",
    "network.kind=cnn",
    "atari.noop_max=0",
    "env.max_episode_steps=40",
    "env.kwargs={repeat_action_probability: 0.0}",
]
MODES = [gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.NEXT_STEP]


def both(mode: gym.vector.AutoresetMode, n: int = 3) -> tuple[gym.vector.VectorEnv, gym.vector.VectorEnv]:
    plain = vector_env(load(DQNConfig, None, PONG), n, 0, mode)
    ale = vector_env(load(DQNConfig, None, [*PONG, "atari.backend=ale_vector"]), n, 0, mode)
    return plain, ale


@pytest.mark.parametrize("mode", MODES, ids=["same_step", "next_step"])
def test_ale_vector_gives_the_gymnasium_backends_stacks_rewards_and_ends(mode):
    plain, ale = both(mode)
    first_plain, _ = plain.reset(seed=7)
    first_ale, _ = ale.reset(seed=7)
    np.testing.assert_array_equal(first_ale, first_plain)
    assert all((s == s[-1]).all() for s in first_ale)  # a new episode's stack: its first frame 4 times
    rng, ends = np.random.default_rng(0), 0
    for _ in range(35):
        actions = rng.integers(0, 6, 3)
        a, b = plain.step(actions), ale.step(actions)
        for x, y in zip(a[:4], b[:4]):  # obs, reward, terminated, truncated
            np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
        ended = np.flatnonzero(a[2] | a[3])
        ends += len(ended)
        if mode == gym.vector.AutoresetMode.SAME_STEP:
            for e in ended:
                np.testing.assert_array_equal(b[4]["final_obs"][e], a[4]["final_obs"][e])
    assert ends == 9  # 3 envs × 3 time limits of 10 agent steps
    plain.close()
    ale.close()


def test_one_game_reports_the_spaces_of_the_gymnasium_backend():
    cfg = load(DQNConfig, None, [*PONG, "atari.backend=ale_vector"])
    assert (
        check_spaces(cfg) == check_spaces(load(DQNConfig, None, PONG)) == ((4, 84, 84), np.dtype(np.uint8), 6)
    )
    env = env_fn(cfg, 0)()
    obs, _ = env.reset(seed=1)
    obs, reward, terminated, truncated, _ = env.step(0)
    assert obs.shape == (4, 84, 84) and reward == 0.0 and not terminated and not truncated
    env.close()


def test_game_names_and_what_the_backend_refuses():
    assert [game_name(i) for i in ("ALE/Pong-v5", "ALE/SpaceInvaders-v5")] == ["pong", "space_invaders"]
    with pytest.raises(
        ConfigError, match="atari.backend: ale_vector steps ALE games, but env.id is 'CartPole-v1'"
    ):
        check_spaces(
            load(DQNConfig, None, ["atari.enabled=true", "atari.backend=ale_vector", "network.kind=cnn"])
        )
    cfg = load(DQNConfig, None, [*PONG, "atari.backend=ale_vector", "env.kwargs={mode: 1}"])
    with pytest.raises(
        ConfigError, match=r"env.kwargs \['mode'\] are not passed on by atari.backend: ale_vector"
    ):
        check_spaces(cfg)
