"""The registry of training families: what ``adl train <family>`` and ``adl sweep`` can run.

Each family is a module in ``pipelines/`` exposing ``FAMILY``; they are imported only when used,
so ``adl --help`` stays fast and a family's heavy imports (torch, ray) cost nothing elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.interfaces import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = REPO_ROOT / "configs"

# family name -> (module, one-line description)
FAMILIES: dict[str, tuple[str, str]] = {
    "qlearn": ("pipelines.qlearn", "tabular Q-learning on toy-text envs, checked against value iteration"),
    "dqn": ("pipelines.dqn", "Ape-X DQN: Ray collectors, shared prioritized replay, Double-DQN learner"),
    "seq": ("pipelines.seq", "LSTM/GRU char language models and last-step regression (adding problem)"),
    "gan": ("pipelines.gan", "GAN / WGAN / WGAN-GP on 2-D mixtures, digits or your data, Tune sweeps"),
}


@dataclass(frozen=True)
class Family:
    """How to configure, build and run one family.

    ``build`` returns a :class:`~components.interfaces.Trainer` that both ``adl train`` and Tune
    trials drive through ``pipelines/runner.py``. ``train``, when set, replaces that runner for
    ``adl train`` (DQN wires collectors, replay and learner itself).
    """

    name: str
    config_cls: type
    default_config: str
    build: Callable[[Any], Trainer] | None = None
    train: Callable[..., int] | None = None
    metric: str = "eval_return"
    mode: str = "max"
    summarize_sweep: Callable[..., list[Path]] | None = None
    check: Callable[[Any], None] | None = None

    def run(self, cfg: Any, ctx: Any) -> int:
        """``adl train`` of this family: its own ``train``, else the chunked trainer loop."""
        if self.train is not None:
            return self.train(cfg, ctx)
        from pipelines.runner import train_trainer

        return train_trainer(self, cfg, ctx)


def get_family(name: str) -> Family:
    from components.config import ConfigError

    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name][0]).FAMILY  # type: ignore[no-any-return]


def shipped_configs(family: str) -> list[Path]:
    folder = CONFIGS_DIR / family
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []
