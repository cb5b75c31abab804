"""Ape-X Pong for a wall-clock budget: greedy evaluation return against wall time and env steps.

Runs ``configs/dqn/pong_gpu.yaml`` (or ``--quick``: a CPU smoke version of it) through ``run_dqn``, the
same path as ``adl train dqn``, with a tracker that keeps every greedy evaluation (ε = 0, on separate
envs) with its env step and wall second, and the loop's periodic logs (updates, env rate). Writes the
curve as a PNG and the numbers as JSON. Used by ``bench_dqn_gpu.py --parts pong``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from components.config import load
from components.rl.dqn.config import DQNConfig
from pipelines.dqn.run import run_dqn
from pipelines.tracking import NullTracker

REPO = Path(__file__).resolve().parents[1]
QUICK = [  # a CPU smoke run: one small collector, a CPU learner, a tiny replay, frequent evaluation
    "learner.device=cpu",
    "learner.batch_size=32",
    "learner.batches_per_call=2",
    "collectors.num_collectors=1",
    "collectors.envs_per_collector=2",
    "collectors.steps_per_call=16",
    "collectors.inference=local",
    "replay.capacity=5000",
    "replay.min_size=128",
    "replay.spi_tolerance=2000",
    "eval.episodes=1",
    "num_cpus=2",
    "checkpoint.every_s=0",
]


class CurveTracker(NullTracker):
    """Keeps the evaluations (env step, wall second, return) and the last periodic log; hands the curve
    so far to ``on_update`` after each (a caller writes it out, so a run cut short leaves it)."""

    def __init__(self, on_update: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.evals: list[dict[str, float]] = []
        self.logs: list[dict[str, float]] = []
        self.on_update = on_update

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if "eval_return" in metrics:
            self.evals.append(
                {"env_steps": step, "wall_s": metrics["wall_s"], "return": metrics["eval_return"]}
            )
        else:
            self.logs.append({"env_steps": step, **metrics})
        if self.on_update is not None:
            self.on_update({"evals": self.evals, "last_log": self.logs[-1] if self.logs else {}})


def pong_curve(
    budget_s: float,
    eval_every: int,
    quick: bool,
    extra: list[str],
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    sets = [*(QUICK if quick else []), f"max_time_s={budget_s}", f"eval.every_env_steps={eval_every}", *extra]
    cfg = load(DQNConfig, REPO / "configs/dqn/pong_gpu.yaml", sets)
    tracker, t0 = CurveTracker(on_update), time.time()
    res, _ = run_dqn(cfg, tracker, progress=False, t_start=t0)
    last = tracker.logs[-1] if tracker.logs else {}
    return {
        "config": "configs/dqn/pong_gpu.yaml",
        "overrides": sets,
        "budget_s": budget_s,
        "wall_s": res.wall_s,
        "env_steps": res.env_steps,
        "learner_steps": res.learner_steps,
        "env_steps_per_s": res.env_steps / max(res.wall_s, 1e-9),
        "updates_per_s": res.learner_steps / max(res.wall_s, 1e-9),
        "best_eval": res.best_eval,
        "solved_at_s": res.solved_at_s,
        "solved_at_env_steps": res.solved_at_env_steps,
        "evals": tracker.evals,
        "last_log": last,
    }


def plot_curve(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = result["evals"]
    fig, (by_time, by_steps) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    by_time.plot([e["wall_s"] / 60 for e in evals], [e["return"] for e in evals], "o-")
    by_steps.plot([e["env_steps"] / 1e6 for e in evals], [e["return"] for e in evals], "o-")
    by_time.set_xlabel("wall time (minutes)")
    by_steps.set_xlabel("env steps (millions)")
    by_time.set_ylabel("greedy evaluation return")
    for ax in (by_time, by_steps):
        ax.axhline(18, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
