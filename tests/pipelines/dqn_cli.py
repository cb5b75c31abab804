"""The ``adl train dqn`` command line the DQN pipeline tests run as a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")


def train_dqn_argv(
    tracking_uri: str, *sets: str, config: str = CARTPOLE, extra: tuple[str, ...] = ()
) -> list[str]:
    """``python -m pipelines.cli train dqn`` on ``config``, no progress bar, each of ``sets`` as --set."""
    argv = [sys.executable, "-m", "pipelines.cli", "train", "dqn", "--config", config]
    argv += ["--tracking-uri", tracking_uri, "--no-progress", *extra]
    return [*argv, *(a for kv in sets for a in ("--set", kv))]
