"""ALE games as one C++ vector env (ale-py's ``AtariVectorEnv``), stacked as gymnasium stacks them.

``atari.backend: ale_vector`` steps every env copy of a collector in ale-py's own vector env: the
frame skip, max-pooling, grayscale, 84×84 resize, no-op starts and frame stack run in C++, so it needs
no opencv (gymnasium's ``AtariPreprocessing`` does) and no Python wrapper per copy. Its frames are
pixel for pixel those of gymnasium's ``AtariPreprocessing`` for the same seed and actions
(``tests/components/rl/dqn/test_ale_vector.py``); only a new episode's stack differs, and
:class:`FirstFramePadding` makes that the same too. Rewards are not clipped and no FIRE is pressed
at reset, as with the gymnasium backend.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from components.config import ConfigError
from components.rl.envs import DEFAULT_MAX_EPISODE_STEPS, EnvConfig, check_env_id

KWARGS = ("repeat_action_probability", "full_action_space")  # the env.kwargs this backend passes on
_ID = re.compile(r"ALE/([A-Za-z0-9]+)-v5")


def game_name(env_id: str) -> str:
    """``ALE/SpaceInvaders-v5`` → ``space_invaders`` (ale-py's ROM name)."""
    m = _ID.fullmatch(env_id)
    if m is None:
        raise ConfigError(
            f"atari.backend: ale_vector steps ALE games, but env.id is {env_id!r}; allowed: an "
            f"ALE/<Game>-v5 id (e.g. ALE/Pong-v5), or atari.backend: gymnasium"
        )
    return re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower()


class FirstFramePadding(gym.vector.VectorWrapper):
    """Repeat a new episode's first frame where ``AtariVectorEnv`` leaves blank ones.

    ``AtariVectorEnv`` starts an episode's stack as [0, 0, 0, f₀]; gymnasium's ``FrameStackObservation``
    as [f₀, f₀, f₀, f₀], and the collectors' frame store, which rebuilds stacks from frame ids, does
    the same. Without this the replay would train on stacks the collectors never acted on. Handles
    both autoreset modes: same-step (the reset stack returned with the final one in ``info``) and
    next-step (the reset stack returned by the step after the end).
    """

    def __init__(self, env: gym.vector.VectorEnv, same_step: bool) -> None:
        super().__init__(env)
        shape = env.single_observation_space.shape
        assert shape is not None
        self.same_step, self.depth = same_step, shape[0]
        self.first = np.zeros((self.num_envs, *shape[1:]), env.single_observation_space.dtype)
        self.age = np.zeros(self.num_envs, np.int64)  # frames of the episode in its stack (≤ depth)
        self.resetting = np.zeros(self.num_envs, bool)  # next-step: this env's next obs is a reset one

    def _start(self, obs: np.ndarray, envs: np.ndarray) -> None:
        self.first[envs] = obs[envs, -1]
        self.age[envs] = 1

    def _pad(self, obs: np.ndarray, first: np.ndarray, age: np.ndarray, envs: Any) -> None:
        for e in np.flatnonzero(age < self.depth) if envs is None else envs:
            if age[e] < self.depth:
                obs[e, : self.depth - age[e]] = first[e]

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        envs = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        self._start(obs, envs)
        self.resetting[envs] = False
        self._pad(obs, self.first, self.age, None)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        ended = np.flatnonzero(np.asarray(terminated) | np.asarray(truncated))
        self.age = np.minimum(self.age + 1, self.depth)
        if self.same_step:
            if len(ended):  # the final stack belongs to the episode that ended: its own first frame
                self._pad(info["final_obs"], self.first, self.age, ended)
                self._start(obs, ended)
        else:
            self._start(obs, np.flatnonzero(self.resetting))
            self.resetting[:] = False
            self.resetting[ended] = True
        self._pad(obs, self.first, self.age, None)
        return obs, reward, terminated, truncated, info


def ale_vector_env(
    env: EnvConfig, atari: Any, num_envs: int, autoreset: gym.vector.AutoresetMode
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env.id`` with ``atari``'s preprocessing, one thread, as a vector env."""
    from ale_py.vector_env import AtariVectorEnv  # ale_py: only Atari runs import it

    game = game_name(env.id)
    check_env_id(env.id)
    unknown = sorted(set(env.kwargs) - set(KWARGS))
    if unknown:
        raise ConfigError(
            f"env.kwargs {unknown} are not passed on by atari.backend: ale_vector; allowed: "
            f"{', '.join(KWARGS)} (or atari.backend: gymnasium)"
        )
    spec = gym.spec(env.id)
    limit = (
        env.max_episode_steps or spec.max_episode_steps or DEFAULT_MAX_EPISODE_STEPS
    )  # frames, as make_env
    try:
        vec = AtariVectorEnv(
            game,
            num_envs,
            num_threads=1,
            max_num_frames_per_episode=limit,
            repeat_action_probability=env.kwargs.get(
                "repeat_action_probability", spec.kwargs.get("repeat_action_probability", 0.25)
            ),
            full_action_space=env.kwargs.get("full_action_space", False),
            autoreset_mode=autoreset,
            img_height=atari.screen_size,
            img_width=atari.screen_size,
            grayscale=True,
            stack_num=atari.stack,
            frameskip=atari.frame_skip,
            maxpool=True,
            noop_max=atari.noop_max,
            episodic_life=atari.terminal_on_life_loss,
            reward_clipping=False,
            use_fire_reset=False,
        )
    except Exception as e:  # the C++ side raises RuntimeError or ValueError for a missing ROM, bad values
        raise ConfigError(
            f"atari.backend: ale_vector could not make {env.id!r} ({type(e).__name__}: {e})"
        ) from e
    return FirstFramePadding(vec, same_step=autoreset == gym.vector.AutoresetMode.SAME_STEP)


class OneGame(gym.Env):  # type: ignore[type-arg]
    """One copy of :func:`ale_vector_env` as a plain env (spaces checks, example observations)."""

    def __init__(self, env: EnvConfig, atari: Any) -> None:
        self.vec = ale_vector_env(env, atari, 1, gym.vector.AutoresetMode.NEXT_STEP)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, _ = self.vec.reset(seed=seed)
        return obs[0], {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _ = self.vec.step(np.array([action]))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def close(self) -> None:
        self.vec.close()
