"""Making gymnasium environments with errors a user can act on."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from components.config import ConfigError, param


@dataclass(frozen=True)
class EnvConfig:
    """Which gymnasium environment to make, and with what arguments."""

    id: str = param("FrozenLake-v1", "gymnasium environment id, e.g. FrozenLake-v1, CartPole-v1")
    kwargs: dict[str, Any] = param(factory=dict, doc="keyword arguments for gymnasium.make")
    max_episode_steps: int | None = param(
        None, "time limit per episode (default: the env's own, else 1000)", ge=1
    )


def _ensure_ale_registered(env_id: str) -> None:
    if env_id.startswith("ALE/"):
        try:
            import ale_py  # registers ALE/ ids; only Atari runs pay its import

            gym.register_envs(ale_py)
        except ImportError as e:  # pragma: no cover - ale-py is a dependency
            raise ConfigError(f"env.id {env_id!r} needs ale-py, which is not installed") from e


def _ensure_minatar_registered(env_id: str) -> None:
    """MinAtar registers ``MinAtar/<Game>-v0|v1`` through a gymnasium plugin entry point, which
    gymnasium 1.x no longer loads by itself: register them here, once."""
    if env_id.startswith("MinAtar/") and env_id not in gym.registry:
        try:
            import minatar.gym  # registers MinAtar/ ids; only MinAtar runs need it
        except ImportError as e:  # pragma: no cover - minatar is a dependency
            raise ConfigError(f"env.id {env_id!r} needs minatar, which is not installed") from e
        if not any(k.startswith("MinAtar/") for k in gym.registry):
            minatar.gym.register_envs()


def check_env_id(env_id: str) -> None:
    """Refuse an id gymnasium does not know, naming the closest ones it does."""
    _ensure_ale_registered(env_id)
    _ensure_minatar_registered(env_id)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"env.id: gymnasium has no environment {env_id!r}.{hint}")


DEFAULT_MAX_EPISODE_STEPS = 1000


def make_env(cfg: EnvConfig, **extra: Any) -> gym.Env:
    """``gymnasium.make`` with a clear error for unknown ids and bad arguments.

    Every env gets a time limit (its own, the config's, or 1000 steps), so that neither training
    nor a greedy evaluation that walks in circles can run forever.
    """
    check_env_id(cfg.id)
    limit = cfg.max_episode_steps or gym.spec(cfg.id).max_episode_steps or DEFAULT_MAX_EPISODE_STEPS
    try:
        return gym.make(cfg.id, max_episode_steps=limit, **{**cfg.kwargs, **extra})
    except Exception as e:  # an env's constructor may raise anything for a bad kwarg (KeyError, ...)
        raise ConfigError(
            f"env.kwargs for {cfg.id!r} were refused by gymnasium ({type(e).__name__}: {e}); "
            f"env.kwargs: {cfg.kwargs!r}"
        ) from e


def check_env(cfg: EnvConfig, what: str, observations: bool = True) -> None:
    """Make the env once and close it: an unknown id, a kwarg its constructor refuses, or spaces
    ``what`` cannot take end here, with a :class:`ConfigError`, before anything starts."""
    env = make_env(cfg)
    try:
        require_discrete(env, cfg.id, what, observations)
    finally:
        env.close()


def require_discrete(env: gym.Env, env_id: str, what: str, observations: bool = True) -> None:
    """Refuse an env whose spaces the learner cannot handle (e.g. continuous actions)."""
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"env.id {env_id!r} has a {type(env.action_space).__name__} action space; {what} needs "
            f"discrete actions (gymnasium.spaces.Discrete)"
        )
    if observations and not isinstance(env.observation_space, gym.spaces.Discrete):
        raise ConfigError(
            f"env.id {env_id!r} has a {type(env.observation_space).__name__} observation space; {what} "
            f"needs discrete observations (try FrozenLake-v1, Taxi-v3 or CliffWalking-v1)"
        )
