"""Tabular Q-learning on any gymnasium env with discrete observations and actions.

The trainer follows adl's trainer protocol (``position``/``total``/``run_chunk``/``state_dict``/
``write_artifacts``) so the same runner drives it locally, with a progress bar and a tracker, as
drives the GAN and sequence trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.config import ConfigError, param, section
from components.data_card import DataCard
from components.rl.envs import EnvConfig, make_env, require_discrete
from components.rl.schedules import ScheduleConfig, check_schedule, schedule_value
from components.rl.tabular import (
    epsilon_greedy,
    greedy_action,
    q_update,
    return_is_success,
    successful_terminal_reward,
    value_iteration,
)


def _eps_default() -> ScheduleConfig:
    return ScheduleConfig(start=1.0, end=0.05, steps=1000, kind="linear")


def _alpha_default() -> ScheduleConfig:
    return ScheduleConfig(start=0.5, end=0.5, steps=0, kind="constant")


@dataclass(frozen=True)
class QLearnConfig:
    """Tabular Q-learning: environment, episodes, step size and exploration."""

    seed: int = param(0, "seed for the env, exploration and tie-breaking", ge=0)
    env: EnvConfig = section(EnvConfig)
    episodes: int = param(2000, "training episodes", ge=1)
    gamma: float = param(0.99, "discount factor", ge=0.0, lt=1.0)
    alpha: ScheduleConfig = param(factory=_alpha_default, doc="step size α per episode")
    epsilon: ScheduleConfig = param(factory=_eps_default, doc="exploration ε per episode")
    eval_every: int = param(100, "episodes between greedy evaluations (and metric reports)", ge=1)
    eval_episodes: int = param(20, "greedy episodes per evaluation", ge=1)
    q_init: float = param(0.0, "initial value of every Q(s, a)")

    def validate(self) -> None:
        if self.alpha.kind != "constant" and not 0 < self.alpha.end <= 1:
            raise ConfigError(f"alpha.end: {self.alpha.end} is out of range; allowed: > 0 and <= 1")
        if not 0 < self.alpha.start <= 1:
            raise ConfigError(f"alpha.start: {self.alpha.start} is out of range; allowed: > 0 and <= 1")
        for name, s in (("epsilon.start", self.epsilon.start), ("epsilon.end", self.epsilon.end)):
            if s > 1:
                raise ConfigError(f"{name}: {s} is out of range; allowed: >= 0 and <= 1")
        check_schedule(self.alpha, "alpha")
        check_schedule(self.epsilon, "epsilon")


class QLearningTrainer:
    """Runs episodes of ε-greedy Q-learning; evaluates the greedy policy and compares Q to Q*."""

    unit = "episode"

    def __init__(self, cfg: QLearnConfig) -> None:
        self.cfg = cfg
        self.env = make_env(cfg.env)
        self.eval_env = make_env(cfg.env)
        require_discrete(self.env, cfg.env.id, "tabular Q-learning")
        self.n_states = int(self.env.observation_space.n)  # type: ignore[attr-defined]
        self.n_actions = int(self.env.action_space.n)  # type: ignore[attr-defined]
        self.q = np.full((self.n_states, self.n_actions), cfg.q_init, dtype=np.float64)
        self.rng = np.random.default_rng(cfg.seed)
        self.position = 0
        self.total = cfg.episodes
        self.env_steps = 0
        self._reset_seed: int | None = cfg.seed
        model = getattr(self.env.unwrapped, "P", None)
        self.q_star = (
            value_iteration(model, self.n_states, self.n_actions, cfg.gamma) if model is not None else None
        )
        self.success_reward = successful_terminal_reward(model) if model is not None else float("inf")
        # Where the return is the success (FrozenLake), the success rate repeats it: reported once.
        self.report_success = model is None or not return_is_success(model)
        self.history: dict[str, list[tuple[int, float]]] = {}

    # -- training ---------------------------------------------------------------------------

    def _episode(self, epsilon: float, alpha: float) -> float:
        state, _ = self.env.reset(seed=self._reset_seed)
        self._reset_seed = None  # seed once; later resets continue the env's own RNG stream
        total, done = 0.0, False
        while not done:
            action = epsilon_greedy(self.q[state], epsilon, self.rng)
            next_state, reward, terminated, truncated, _ = self.env.step(action)
            q_update(self.q, state, action, float(reward), next_state, terminated, alpha, self.cfg.gamma)
            state, total, done = next_state, total + float(reward), terminated or truncated
            self.env_steps += 1
        return total

    def evaluate(self, episodes: int) -> tuple[float, float]:
        """Mean return and success rate of the greedy policy (ε = 0) on a separate env."""
        returns, successes = [], 0
        for i in range(episodes):
            state, _ = self.eval_env.reset(seed=10_000 + self.cfg.seed * 1000 + i)
            total, done, reward, terminated = 0.0, False, 0.0, False
            while not done:
                action = greedy_action(self.q[state], self.rng)
                state, r, terminated, truncated, _ = self.eval_env.step(action)
                reward = float(r)
                total += reward
                done = terminated or truncated
            returns.append(total)
            successes += int(terminated and reward >= self.success_reward)
        return float(np.mean(returns)), successes / episodes

    def run_chunk(self) -> dict[str, float]:
        """Train ``eval_every`` episodes (fewer at the end), then evaluate; return the metrics."""
        n = min(self.cfg.eval_every, self.total - self.position)
        returns = []
        for _ in range(n):
            eps = schedule_value(self.cfg.epsilon, self.position)
            alpha = schedule_value(self.cfg.alpha, self.position)
            returns.append(self._episode(eps, alpha))
            self.position += 1
        eval_return, success = self.evaluate(self.cfg.eval_episodes)
        metrics = {
            "train_return": float(np.mean(returns)),
            "eval_return": eval_return,
            **({"success_rate": success} if self.report_success else {}),
            "epsilon": schedule_value(self.cfg.epsilon, self.position),
            "alpha": schedule_value(self.cfg.alpha, self.position),
            "env_steps": float(self.env_steps),
        }
        if self.q_star is not None:
            metrics["max_abs_q_error"] = float(np.max(np.abs(self.q - self.q_star)))
        for k, v in metrics.items():
            self.history.setdefault(k, []).append((self.position, v))
        return metrics

    # -- state and artifacts ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.copy(), "position": self.position, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = np.asarray(state["q"])
        if q.shape != self.q.shape:
            raise ConfigError(f"Q-table shape {q.shape} does not match this env's {self.q.shape}")
        self.q = q.astype(np.float64)
        self.position = int(state["position"])
        self.env_steps = int(state["env_steps"])

    def describe(self) -> dict[str, str]:
        return {"device": "cpu"}  # a numpy table

    def datasets(self) -> list[DataCard]:
        return []  # experience comes from the environment (the run's env params), not a dataset

    def models(self) -> dict[str, tuple[Any, np.ndarray]]:
        return {}  # the Q-table is an artifact (q_table.npy), not a network

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """Q-table (.npy and Parquet), learning curves, and a policy/value map for grid worlds."""
        # matplotlib: ~0.5 s of import, only the artifacts need it
        from components.rl.tabular_plots import plot_grid_policy, plot_learning_curves, write_q_table

        out_dir.mkdir(parents=True, exist_ok=True)
        paths = write_q_table(self.q, out_dir)
        paths.append(plot_learning_curves(self.history, out_dir / "learning_curves.png", self.cfg.env.id))
        shape = grid_shape(self.env)
        if shape is not None:
            paths.append(
                plot_grid_policy(
                    self.q,
                    shape,
                    out_dir / "policy_value.png",
                    self.cfg.env.id,
                    getattr(self.env.unwrapped, "desc", None),
                )
            )
        return paths


def grid_shape(env: Any) -> tuple[int, int] | None:
    """(rows, cols) for grid worlds whose states are row-major cells, else None (e.g. Taxi)."""
    u = env.unwrapped
    desc = getattr(u, "desc", None)
    if desc is not None and getattr(u, "nrow", None) and u.nrow * u.ncol == env.observation_space.n:
        return int(u.nrow), int(u.ncol)
    shape = getattr(u, "shape", None)
    if shape is not None and len(shape) == 2 and shape[0] * shape[1] == env.observation_space.n:
        return int(shape[0]), int(shape[1])
    return None
