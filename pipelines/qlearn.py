"""Composition root for tabular Q-learning (``adl train qlearn``)."""

from __future__ import annotations

from components.rl.qlearning import QLearnConfig, QLearningTrainer
from pipelines.families import Family

FAMILY = Family(
    name="qlearn",
    config_cls=QLearnConfig,
    default_config="qlearn/frozenlake.yaml",
    build=QLearningTrainer,
    metric="eval_return",
    mode="max",
)
