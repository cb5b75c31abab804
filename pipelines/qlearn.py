"""Composition root for tabular Q-learning (``adl train qlearn``)."""

from __future__ import annotations

from components.rl.envs import check_env
from components.rl.qlearning import QLearnConfig, QLearningTrainer
from pipelines.families import Family, slug
from pipelines.tracking.metric_names import QLEARN


def run_name(cfg: QLearnConfig) -> str:
    return slug("qlearn", cfg.env.id, f"s{cfg.seed}")


def check(cfg: QLearnConfig) -> None:
    """The env exists, takes its kwargs and has discrete spaces (before a sweep starts Ray)."""
    check_env(cfg.env, "tabular Q-learning")


FAMILY = Family(
    name="qlearn",
    names=QLEARN,
    run_name=run_name,
    build=QLearningTrainer,
    metric="eval_return",
    mode="max",
    check=check,
)
