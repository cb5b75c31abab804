"""Composition root for GANs (``adl train gan``, ``adl sweep`` with ``family: gan``).

``adl train gan`` drives :class:`GanTrainer` with the local runner; a sweep drives the same trainer
in Tune trials and, at the end, calls :func:`summarize_sweep` for the parent run's figures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.gan.config import GanConfig
from components.gan.trainer import GanTrainer
from pipelines.families import Family, slug
from pipelines.tracking.metric_names import GAN

METRIC = "eval_distance"


SUMMARY_KEYS = (
    METRIC,
    "best_eval_distance",
    "raw_eval_distance",
    "modes_covered",
    "hq_fraction",
    "class_coverage",
    "class_accuracy",
    "wall_s",
)


def summarize_sweep(results: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Every trial's distance curve in one figure (against the generator step and, as trials report
    their wall clock, against wall seconds), and a JSON table of the trials' last reports, best first."""
    from components.gan.plots import plot_sweep  # matplotlib: only a sweep's summary draws

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted(
        (
            {
                "run_id": r.get("run_id"),
                "config": r.get("config", {}),
                **{k: (r.get("metrics") or {}).get(k) for k in SUMMARY_KEYS if k in (r.get("metrics") or {})},
            }
            for r in results
        ),
        key=lambda row: row.get(METRIC, float("inf")),
    )
    table = out_dir / "sweep_summary.json"
    table.write_text(json.dumps(rows, indent=2, default=str))
    return [table, plot_sweep(results, METRIC, out_dir / "sweep_curves.png")]


def run_name(cfg: GanConfig) -> str:
    return slug("gan", cfg.data.kind, cfg.train.loss, f"s{cfg.seed}")


FAMILY = Family(
    name="gan",
    names=GAN,
    run_name=run_name,
    build=GanTrainer,
    metric=METRIC,
    mode="min",
    summarize_sweep=summarize_sweep,
)
