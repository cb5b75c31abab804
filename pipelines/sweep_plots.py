"""The picture a sweep's parent run ends with: the metric against every swept value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

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
