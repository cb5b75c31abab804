"""The DQN learning-curve picture: returns against env steps and against wall seconds, loss and mean Q."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402


def steps_label(x: float, _pos: object = None) -> str:
    """An env-step tick, short enough that five fit under a 4-inch panel: 20k, 1.5M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


RETURNS = (
    ("train_return", "training (last 20 episodes)"),
    ("train_return_100", "training (last 100 episodes)"),
    ("eval_return", "evaluation"),
)


def wall_at(history: dict[str, list[tuple[int, float]]], steps: np.ndarray) -> np.ndarray | None:
    """Wall seconds at ``steps`` env steps, interpolated from the (env steps, wall_s) points logged."""
    points = sorted(history.get("wall_s", []))
    if len(points) < 1:
        return None
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    return np.interp(steps, xs, ys)


def plot_dqn_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    fig = dqn_curves_figure(history)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dqn_curves_figure(history: dict[str, list[tuple[int, float]]]) -> Figure:
    """Returns against env steps (frames) and, where ``wall_s`` was logged, against wall seconds; loss
    and mean Q against env steps: four panels in a row."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for key, label in RETURNS:
        if history.get(key):
            xs, ys = zip(*history[key])
            axes[0].plot(xs, ys, label=label)
            wall = wall_at(history, np.asarray(xs, float))
            if wall is not None:
                axes[1].plot(wall, ys, label=label)
    for ax, title in ((axes[0], "return against env steps"), (axes[1], "return against wall seconds")):
        ax.set_title(title)
        if ax.lines:
            ax.legend(fontsize=7)
    axes[1].set_xlabel("wall seconds (from launch)")
    axes[1].grid(alpha=0.3)
    for ax, key in zip(axes[2:], ("loss", "mean_q")):
        if history.get(key):
            xs, ys = zip(*history[key])
            ax.plot(xs, ys)
        ax.set_title(key)
    for ax in (axes[0], *axes[2:]):
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(steps_label))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
