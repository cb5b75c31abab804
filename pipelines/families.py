"""The registry of training families: what ``adl train <family>`` and ``adl sweep`` can run.

The registry knows, for each family, where its config class lives, which imports no torch, Ray
or MLflow: a config is loaded and validated (and bad input refused) in well under a second,
before the family's module and its heavy imports are loaded. Each family is a module in
``pipelines/`` exposing ``FAMILY``, imported only when used.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import ConfigError
from components.interfaces import Trainer
from pipelines.tracking.metric_names import MetricNames

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = REPO_ROOT / "configs"


@dataclass(frozen=True)
class FamilySpec:
    """What the command line knows of a family before importing it."""

    module: str  # where FAMILY lives
    config: str  # "module:Class" of its config
    default_config: str  # under configs/
    doc: str
    resumable: bool = False  # adl train --resume RUN_ID continues a run
    networks: bool = True  # it learns networks, logged as MLflow models (what --register registers)

    def config_cls(self) -> type:
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


FAMILIES: dict[str, FamilySpec] = {
    "qlearn": FamilySpec(
        "pipelines.qlearn",
        "components.rl.qlearning:QLearnConfig",
        "qlearn/frozenlake.yaml",
        "tabular Q-learning on toy-text envs, checked against value iteration",
        networks=False,
    ),
    "dqn": FamilySpec(
        "pipelines.dqn.train",
        "components.rl.dqn.config:DQNConfig",
        "dqn/cartpole.yaml",
        "Ape-X DQN: Ray collectors, shared prioritized replay, Double-DQN learner",
        resumable=True,
    ),
    "seq": FamilySpec(
        "pipelines.seq",
        "components.seq.config:SeqConfig",
        "seq/char_lstm.yaml",
        "LSTM/GRU char language models and last-step regression (adding problem)",
    ),
    "gan": FamilySpec(
        "pipelines.gan",
        "components.gan.config:GanConfig",
        "gan/ring8_wgan_gp.yaml",
        "GAN / WGAN / WGAN-GP on 2-D mixtures, digits or your data, Tune sweeps",
    ),
}


@dataclass(frozen=True)
class Family:
    """How to build, run, name and summarise one family.

    ``build`` returns a :class:`~components.interfaces.Trainer` that both ``adl train`` and Tune
    trials drive through ``pipelines/runner.py``. ``train``, when set, replaces that runner for
    ``adl train`` (DQN wires collectors, replay and learner itself). ``run_name`` says what ran
    (``dqn-CartPole-v1-s0``); ``names`` how its metrics read in MLflow.
    """

    name: str
    names: MetricNames
    run_name: Callable[[Any], str]
    build: Callable[[Any], Trainer] | None = None
    train: Callable[..., int] | None = None
    metric: str = "eval_return"
    mode: str = "max"
    summarize_sweep: Callable[..., list[Path]] | None = None
    check: Callable[[Any], None] | None = None

    @property
    def config_cls(self) -> type:
        return FAMILIES[self.name].config_cls()

    @property
    def default_config(self) -> str:
        return FAMILIES[self.name].default_config

    def run(self, cfg: Any, ctx: Any) -> int:
        """``adl train`` of this family: its own ``train``, else the chunked trainer loop."""
        if self.train is not None:
            return self.train(cfg, ctx)
        # torch (~2 s): the command line imports this module for `adl --help` and refusals too
        from pipelines.runner import train_trainer

        return train_trainer(self, cfg, ctx)


def slug(*parts: Any) -> str:
    """A run name from its parts: ``dqn``, ``ALE/Pong-v5``, ``s0`` → ``dqn-ALE-Pong-v5-s0``."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.=]+", "-", str(p)).strip("-") for p in parts if str(p) != "")


def family_spec(name: str) -> FamilySpec:
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def get_family(name: str) -> Family:
    return importlib.import_module(family_spec(name).module).FAMILY  # type: ignore[no-any-return]


def shipped_configs(family: str) -> list[Path]:
    folder = CONFIGS_DIR / family
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []
