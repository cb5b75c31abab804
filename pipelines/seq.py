"""Composition root for sequence models (``adl train seq``, ``adl sweep`` with ``family: seq``).

``val_loss`` is the held-out bits per character for ``task: char_lm`` (equal to ``val_bpc``) and the
held-out MSE for ``adding`` / ``regression``; sweeps minimise it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.seq.config import SeqConfig
from components.seq.trainer import SeqTrainer
from pipelines.families import Family, slug
from pipelines.tracking.metric_names import SEQ


def summarize_sweep(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """The comparison table (Markdown + CSV) and the held-out bpc against wall time plot."""
    from components.seq.comparison import summarize  # matplotlib: only a sweep's summary draws

    return summarize(results, out_dir)


def run_name(cfg: SeqConfig) -> str:
    return slug("seq", cfg.task, cfg.model.cell, cfg.model.impl, f"s{cfg.seed}")


FAMILY = Family(
    name="seq",
    names=SEQ,
    run_name=run_name,
    build=SeqTrainer,
    metric="val_loss",
    mode="min",
    summarize_sweep=summarize_sweep,
)
