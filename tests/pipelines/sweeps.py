"""The sweep the sweep tests run: the shipped Q-learning sweep (fast), through the real command."""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


def sweep(tracking_uri: str, *sets: str, experiment: str | None = None) -> int:
    """``adl sweep`` of the Q-learning sweep on 2 CPUs, with ``--set`` for each item."""
    argv = ["sweep", "--config", SWEEP, "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    argv += ["--experiment", experiment] if experiment else []
    for item in sets:
        argv += ["--set", item]
    return main(argv)


def sweep_argv(tracking_uri: str) -> list[str]:
    """``python -m pipelines.cli sweep`` on 2 CPUs, for the tests that run the sweep as a subprocess
    (to signal it); the caller adds ``--config`` and the rest."""
    return [sys.executable, "-m", "pipelines.cli", "sweep", "--tracking-uri", tracking_uri, "--num-cpus", "2"]
