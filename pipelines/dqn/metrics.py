"""What the DQN loop logs: a curve row often (the learner's means since the last one, the training
return), and every ``log_every_s`` the rest (rates, Q against returns, ε, the replay, faults), and
the progress-bar line."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from components.rl.dqn.collector import EpisodeStats


class LoopMetrics:
    """Running statistics between two logs; :meth:`collect` turns them into one row of metrics."""

    def __init__(self, env_steps: int, learner_steps: int, epsilon_varies: bool = True) -> None:
        self.recent: deque[float] = deque(maxlen=20)  # last 20 training returns (the "rolling-20 mean")
        # Last 100: what MinAtar's and most Atari DQN papers plot (Young & Tian 2019 average the returns
        # of the last 100 training episodes); logged as train_return_100.
        self.recent100: deque[float] = deque(maxlen=100)
        self.overest: deque[tuple[float, float]] = deque(maxlen=100)  # (Q at s_0, return from s_0)
        self.epsilon: dict[int, float] = {}  # each collector's latest mean ε
        self.epsilon_varies = epsilon_varies  # False: Ape-X's fixed ε (a param, not a flat line)
        self.learner_rows: list[dict[str, float]] = []
        self.last_t, self.last_env_steps, self.last_updates = time.time(), env_steps, learner_steps
        self.curve_env_steps = env_steps

    def add_episodes(self, stats: EpisodeStats) -> None:
        self.recent.extend(stats.returns)
        self.recent100.extend(stats.returns)
        self.overest.extend(zip(stats.q_start, stats.mc_return))
        self.epsilon[stats.collector] = stats.epsilon

    def add_updates(self, rows: list[dict[str, float]]) -> None:
        self.learner_rows.extend(rows)

    def pending(self, env_steps: int) -> bool:
        """Whether anything happened since the last :meth:`collect` (updates or env steps)."""
        return bool(self.learner_rows) or env_steps > self.last_env_steps

    def curve(self, env_steps: int, episodes: int, learner_steps: int) -> dict[str, float]:
        """The curve row: the learner's means over the updates since the last row (none if there were
        none), its step count, the training return; empty if nothing happened since."""
        if not self.learner_rows and env_steps == self.curve_env_steps:
            return {}
        rows, self.learner_rows = self.learner_rows, []
        self.curve_env_steps = env_steps
        metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
        metrics |= {"learner_steps": float(learner_steps), "episodes": float(episodes)}
        if self.recent:
            metrics["train_return"] = self.train_return
            metrics["train_return_100"] = self.train_return_100
        return metrics

    @property
    def train_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    @property
    def train_return_100(self) -> float:
        return float(np.mean(self.recent100)) if self.recent100 else float("nan")

    def collect(
        self,
        now: float,
        env_steps: int,
        episodes: int,
        learner_steps: int,
        extra: dict[str, float],
    ) -> dict[str, float]:
        """The curve row (:meth:`curve`; the counts and training return unless that row was logged at
        this env step already) and the rest since the last call: rates, Q at the episodes' starts
        against their returns, ε, with ``extra`` merged in."""
        dt = now - self.last_t
        row = self.curve(env_steps, episodes, learner_steps)
        # No row: nothing happened since the curve's row at this very env step, which logged these
        # (logged again at the same step, a model chosen here would list each twice).
        counts = (
            {
                "train_return": self.train_return,
                "train_return_100": self.train_return_100,
                "episodes": float(episodes),
                "learner_steps": float(learner_steps),
            }
            if row
            else {}
        )
        metrics = {
            **row,
            **counts,
            "env_steps_per_s": (env_steps - self.last_env_steps) / dt,
            "updates_per_s": (learner_steps - self.last_updates) / dt,
            **extra,
        }
        if self.epsilon and self.epsilon_varies:  # the collectors' mean ε (all envs weigh alike)
            metrics["epsilon"] = float(np.mean(list(self.epsilon.values())))
        if self.overest:
            metrics["q_start"] = float(np.mean([q for q, _ in self.overest]))
            metrics["mc_return"] = float(np.mean([g for _, g in self.overest]))
            metrics["q_overestimation"] = metrics["q_start"] - metrics["mc_return"]
        self.last_t, self.last_env_steps, self.last_updates = now, env_steps, learner_steps
        return metrics


def progress_postfix(metrics: dict[str, float], episodes: int, last_eval: float) -> dict[str, object]:
    """The short line beside the progress bar: episodes, returns, speeds."""
    return {
        "ep": episodes,
        "ret20": f"{metrics['train_return']:.0f}",
        "eval": f"{last_eval:.0f}",
        "sps": f"{metrics['env_steps_per_s']:.0f}",
        "ups": f"{metrics['updates_per_s']:.0f}",
    }
