"""What a sweep's parent run ends with: the metric against every swept value, and a table of every
trial's config and final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_sweep(trials: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """One panel per swept key: each trial's final metric against its value (log x for spans > 100×)."""
    keys = sorted({k for t in trials for k in t["config"]})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.4 * max(1, len(keys)), 3), squeeze=False)
    for ax, key in zip(axes[0], keys or [""]):
        xs = [t["config"].get(key) for t in trials]
        ys = [t["metrics"][metric] for t in trials]
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
        if numeric:
            ax.scatter(xs, ys)
            if min(xs) > 0 and max(xs) / min(xs) > 100:
                ax.set_xscale("log")
        else:
            labels = sorted({str(x) for x in xs})
            ax.scatter([labels.index(str(x)) for x in xs], ys)
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    fig.suptitle(f"{len(trials)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_results_table(trials: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``sweep_results.parquet`` and ``.csv``: one row per trial, its MLflow run id, every swept value
    (``config.<key>``) and its final metrics."""
    keys = sorted({k for t in trials for k in t["config"]})
    metrics = sorted({k for t in trials for k, v in t["metrics"].items() if isinstance(v, int | float)})
    rows = [
        {
            "run_id": t["run_id"],
            **{f"config.{k}": t["config"].get(k) for k in keys},
            **{m: t["metrics"].get(m) for m in metrics if m != "mlflow_run_id"},
        }
        for t in trials
    ]
    for col in {k for r in rows for k in r}:  # a column of mixed kinds (lists, strings, numbers) as text
        kinds = {type(r.get(col)) for r in rows} - {type(None)}
        if len(kinds - {int, float}) > 0 and len(kinds) > 1 or kinds & {list, dict, tuple}:
            for r in rows:
                r[col] = None if r.get(col) is None else str(r[col])
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, out_dir / "sweep_results.parquet")
    pcsv.write_csv(table, out_dir / "sweep_results.csv")
    return [out_dir / "sweep_results.parquet", out_dir / "sweep_results.csv"]
