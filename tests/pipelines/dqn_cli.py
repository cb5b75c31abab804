"""The ``adl train dqn`` command line the DQN pipeline tests run as a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")
# A few seconds of CartPole on 2 cores, one collector, a replay small enough that its ring wraps, no
# stop target (the tests that resume or tamper with checkpoints start from it).
SMALL = [
    "collectors.num_collectors=1",
    "collectors.envs_per_collector=4",
    "replay.capacity=2000",
    "replay.min_size=256",
    "eval.every_env_steps=1000",
    "eval.episodes=1",
    "eval.stop_at_return=null",
    "log_every_s=0.2",
]


def as_sets(items: list[str]) -> list[str]:
    """``--set`` before each of ``items``."""
    return [a for kv in items for a in ("--set", kv)]


def train_dqn_argv(
    tracking_uri: str, *sets: str, config: str = CARTPOLE, extra: tuple[str, ...] = ()
) -> list[str]:
    """``python -m pipelines.cli train dqn`` on ``config``, no progress bar, each of ``sets`` as --set."""
    argv = [sys.executable, "-m", "pipelines.cli", "train", "dqn", "--config", config]
    argv += ["--tracking-uri", tracking_uri, "--no-progress", *extra]
    return [*argv, *(a for kv in sets for a in ("--set", kv))]
