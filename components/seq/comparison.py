"""The LSTM-vs-GRU comparison a sweep ends with: a table (Markdown and CSV) and a bpc-vs-wall-time plot.

Input: one dict per trial, ``{"config": {dotted overrides}, "metrics": last metrics, "history":
[metrics dicts, each with "wall_s"], "run_id": ...}``. Best loss and time to target are read from the
history, not the last report, so a trial that ASHA stopped early is still compared fairly on what it
reached; the ``reports`` column shows how far each trial ran.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CELL_COLORS = {"lstm": "tab:blue", "gru": "tab:orange"}


@dataclass(frozen=True)
class TrialRow:
    """One line of the comparison table."""

    label: str
    cell: str
    hidden: str
    seed: str
    params: int
    tokens_per_s: float
    best: float
    final: float
    time_to_target_s: float  # nan when the target was never reached
    reports: int  # how many evaluations the trial reported before it ended or was stopped
    steps: int  # the trainer's position at its last report (0 when not reported)
    run_id: str


def _loss_key(history: Sequence[dict[str, float]]) -> str:
    return "val_bpc" if history and "val_bpc" in history[0] else "val_loss"


def trial_row(result: dict[str, Any]) -> TrialRow | None:
    """Reduce one trial to its row; None for a trial that reported nothing."""
    history = [h for h in result.get("history") or [] if "val_loss" in h]
    if not history and "val_loss" in (result.get("metrics") or {}):
        history = [result["metrics"]]  # Tune kept no per-report history: compare on the last report
    if not history:
        return None
    cfg = result.get("config") or {}
    key = _loss_key(history)
    last = history[-1]
    target = float(last.get("target", math.nan))
    reached = [h["wall_s"] for h in history if h[key] <= target and "wall_s" in h]
    cell = str(cfg.get("model.cell", last.get("cell", "?")))
    hidden = str(cfg.get("model.hidden_size", ""))
    seed = str(cfg.get("seed", ""))
    # Name the trial by what the sweep varied; keys it did not vary are the same for every trial.
    label = " ".join([cell] + [f"{k}={v}" for k, v in (("h", hidden), ("seed", seed)) if v])
    return TrialRow(
        label=label,
        cell=cell,
        hidden=hidden,
        seed=seed,
        params=int(last.get("params", 0)),
        tokens_per_s=float(last.get("tokens_per_s", math.nan)),
        best=min(h[key] for h in history),
        final=float(last[key]),
        time_to_target_s=min(reached) if reached else math.nan,
        reports=len(history),
        steps=int(last.get("position", 0) or 0),
        run_id=str(result.get("run_id") or ""),
    )


def _fmt(x: float, spec: str) -> str:
    return "not reached" if isinstance(x, float) and math.isnan(x) else format(x, spec)


def markdown_table(rows: Sequence[TrialRow], metric: str, target: float) -> str:
    lines = [
        f"| trial | params | tokens/s | best {metric} | final {metric} "
        f"| time to {metric} ≤ {target:.3g} (s) | steps | reports |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.params:,} | {r.tokens_per_s:,.0f} | {r.best:.4f} | {r.final:.4f} | "
            f"{_fmt(r.time_to_target_s, '.1f')} | {r.steps} | {r.reports} |"
        )
    return "\n".join(lines) + "\n"


def summarize(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write comparison.md, comparison.csv and bpc_vs_wall.png; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(r, row) for r in results if (row := trial_row(r)) is not None]
    pairs.sort(key=lambda p: (p[1].cell, p[1].hidden, p[1].seed))
    rows = [row for _, row in pairs]
    history0 = (pairs[0][0].get("history") or [pairs[0][0]["metrics"]]) if pairs else []
    metric = _loss_key(history0) if pairs else "val_loss"
    target = float(history0[-1].get("target", math.nan)) if pairs else math.nan

    md = out_dir / "comparison.md"
    text = f"# LSTM vs GRU: {len(rows)} trials (of {len(results)})\n\n" + markdown_table(rows, metric, target)
    text += (
        "\n`best` is the lowest held-out value any report reached; `time to` is the trial's wall time at "
        "the first report at or below the target (ASHA may stop weak trials early: see `steps`).\n"
    )
    md.write_text(text, encoding="utf-8")

    path_csv = out_dir / "comparison.csv"
    with path_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "cell",
                "hidden_size",
                "seed",
                "params",
                "tokens_per_s",
                f"best_{metric}",
                f"final_{metric}",
                "time_to_target_s",
                "steps",
                "reports",
                "run_id",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.cell,
                    r.hidden,
                    r.seed,
                    r.params,
                    f"{r.tokens_per_s:.1f}",
                    f"{r.best:.5f}",
                    f"{r.final:.5f}",
                    f"{r.time_to_target_s:.2f}",
                    r.steps,
                    r.reports,
                    r.run_id,
                ]
            )

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    hiddens = sorted({row.hidden for row in rows})
    styles = ["-", "--", ":", "-."]
    for result, row in pairs:
        hist = [h for h in result.get("history") or [result["metrics"]] if "val_loss" in h and "wall_s" in h]
        ax.plot(
            [h["wall_s"] for h in hist],
            [h[metric] for h in hist],
            marker="o",
            ms=3,
            color=CELL_COLORS.get(row.cell, "grey"),
            ls=styles[hiddens.index(row.hidden) % len(styles)],
            label=row.label,
        )
    if not math.isnan(target):
        ax.axhline(target, color="tab:red", lw=1, ls="--", label=f"target {target:.3g}")
    ax.set(xlabel="wall time (s)", ylabel=f"held-out {metric}", title="held-out loss against wall time")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = out_dir / "bpc_vs_wall.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [md, path_csv, png]
