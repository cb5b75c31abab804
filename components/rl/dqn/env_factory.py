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


def env_fn(cfg: DQNConfig, seed: int) -> Callable[[], gym.Env]:
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
                f"needs vectors. Use network.kind: cnn with atari.enabled: true"
            )
        if cfg.network.kind == "cnn" and len(shape) != 3:
            raise ConfigError(
                f"network.kind: cnn needs stacked frames [C, H, W]; env.id {cfg.env.id!r} gives "
                f"{shape}. Use network.kind: mlp, or atari.enabled: true for ALE games"
            )
        if len(shape) != 1 and cfg.network.kind == "mlp":
            raise ConfigError(
                f"network.kind: mlp needs 1-D observations; env.id {cfg.env.id!r} gives {shape}"
            )
        return shape, dtype, int(env.action_space.n)  # type: ignore[attr-defined]
    finally:
        env.close()
