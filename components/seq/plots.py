"""Figures of one sequence run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(
    history: dict[str, list[tuple[int, float]]], path: Path, title: str, target: float | None = None
) -> Path:
    """Held-out and training loss against steps (one unit: bits per character, or MSE), with the
    target line and any known floor."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style, label in (("val_loss", "-o", "held-out"), ("train_loss", "--", "training")):
        if key in history:
            steps, values = zip(*history[key])
            ax.plot(steps, values, style, ms=3, label=label)
    for key, label in (("source_bpc", "source entropy (held-out)"), ("trivial_mse", "trivial predictor")):
        if key in history:
            ax.axhline(history[key][-1][1], color="grey", lw=1, ls=":", label=label)
    if target:
        ax.axhline(target, color="tab:red", lw=1, ls="--", label=f"target {target:.3g}")
    unit = "bits per character" if "val_bpc" in history else "MSE"
    ax.set(xlabel="step", ylabel=unit, title=title)
    if "val_bpc" not in history:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_predictions(pred: np.ndarray, target: np.ndarray, path: Path, task: str) -> Path:
    """Held-out predictions against targets; a perfect model lies on the diagonal."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(target, pred, s=4, alpha=0.5)
    lo, hi = float(min(target.min(), pred.min())), float(max(target.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
    ax.set(
        xlabel="target",
        ylabel="prediction",
        title=f"{task}: held-out MSE {np.mean((pred - target) ** 2):.4g}",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
