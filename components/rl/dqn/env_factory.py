"""Environments for DQN: vector or pixel observations, Atari preprocessing, spaces checked up front."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from components.config import ConfigError
from components.rl.dqn.ale_vector import OneGame, ale_vector_env
from components.rl.dqn.config import DQNConfig
from components.rl.envs import make_env, require_discrete

SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


def is_minatar(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


class ChannelsFirst(gym.ObservationWrapper):
    """[H, W, C] frames → [C, H, W], the layout ``Conv2d`` takes, with the env's own dtype kept.

    MinAtar gives 10×10×C boolean frames (one channel per kind of object); they stay booleans (one
    byte a cell in the replay and in every push, a quarter of float32) and become 0/1 floats only
    inside the network's forward.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box) and len(space.shape) == 3, space
        self.observation_space = gym.spaces.Box(
            low=np.transpose(space.low, (2, 0, 1)),
            high=np.transpose(space.high, (2, 0, 1)),
            dtype=space.dtype,  # type: ignore[arg-type]
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)))


def env_fn(cfg: DQNConfig, seed: int) -> Callable[[], gym.Env]:
    """A constructor of one env: ALE with Atari preprocessing (``atari.enabled``), MinAtar with its
    frames channels-first, anything else as gymnasium makes it. MinAtar's sticky actions and
    difficulty ramping are its own kwargs (``env.kwargs``), on by default as in every version since
    1.0.1; its games are seeded through ``reset(seed=...)`` like any other env."""

    def make() -> gym.Env:
        if cfg.atari.enabled and cfg.atari.backend == "ale_vector":
            env: gym.Env = OneGame(cfg.env, cfg.atari)
        elif cfg.atari.enabled:
            env = make_env(cfg.env, frameskip=1)
            env = gym.wrappers.AtariPreprocessing(
                env,
                noop_max=cfg.atari.noop_max,
                frame_skip=cfg.atari.frame_skip,
                screen_size=cfg.atari.screen_size,
                terminal_on_life_loss=cfg.atari.terminal_on_life_loss,
                grayscale_obs=True,
            )
            env = gym.wrappers.FrameStackObservation(env, cfg.atari.stack)  # padded with the first frame
        elif is_minatar(cfg.env.id):
            env = ChannelsFirst(make_env(cfg.env))
        else:
            env = make_env(cfg.env)
        env.action_space.seed(seed)
        return env

    return make


def vector_env(
    cfg: DQNConfig, num_envs: int, seed: int, autoreset: gym.vector.AutoresetMode = SAME_STEP
) -> gym.vector.VectorEnv:
    """``num_envs`` copies stepped together; by default finished copies reset in the same step (final
    obs in info). ALE games with ``atari.backend: ale_vector``: one ale-py vector env (C++)."""
    if cfg.atari.enabled and cfg.atari.backend == "ale_vector":
        envs = ale_vector_env(cfg.env, cfg.atari, num_envs, autoreset)
        envs.action_space.seed(seed)
        return envs
    fns = [env_fn(cfg, seed + i) for i in range(num_envs)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset)


def check_spaces(cfg: DQNConfig) -> tuple[tuple[int, ...], np.dtype, int]:
    """(obs shape, obs dtype, n actions), refusing envs the configured network cannot take."""
    env = env_fn(cfg, cfg.seed)()
    try:
        require_discrete(env, cfg.env.id, "DQN", observations=False)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(
                f"env.id {cfg.env.id!r}: DQN needs Box observations, got {type(space).__name__}"
            )
        shape, dtype = tuple(space.shape), np.dtype(space.dtype)
        pixels = len(shape) == 3 or (len(shape) >= 2 and dtype == np.uint8)
        if pixels and cfg.network.kind == "mlp":
            raise ConfigError(
                f"env.id {cfg.env.id!r} has pixel observations {shape} ({dtype}); network.kind: mlp "
                f"needs vectors. Use network.kind: cnn"
                + (" (configs/dqn/minatar.yaml)" if is_minatar(cfg.env.id) else " with atari.enabled: true")
            )
        if cfg.network.kind == "cnn" and len(shape) != 3:
            raise ConfigError(
                f"network.kind: cnn needs frames [C, H, W]; env.id {cfg.env.id!r} gives "
                f"{shape}. Use network.kind: mlp, or atari.enabled: true for ALE games"
            )
        if len(shape) != 1 and cfg.network.kind == "mlp":
            raise ConfigError(
                f"network.kind: mlp needs 1-D observations; env.id {cfg.env.id!r} gives {shape}"
            )
        return shape, dtype, int(env.action_space.n)  # type: ignore[attr-defined]
    finally:
        env.close()
