"""The DQN learning-curve picture: training and greedy evaluation returns, loss and mean Q."""

from __future__ import annotations

from pathlib import Path

import matplotlib

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


def plot_dqn_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    fig = dqn_curves_figure(history)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dqn_curves_figure(history: dict[str, list[tuple[int, float]]]) -> Figure:
    """Returns, loss and mean Q against env steps, three panels in a row."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for key, label in (("train_return", "training (rolling 20)"), ("eval_return", "greedy evaluation")):
        if history.get(key):
            xs, ys = zip(*history[key])
            axes[0].plot(xs, ys, label=label)
    axes[0].set_title("return")
    axes[0].legend()
    for ax, key in zip(axes[1:], ("loss", "mean_q")):
        if history.get(key):
            xs, ys = zip(*history[key])
            ax.plot(xs, ys)
        ax.set_title(key)
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(steps_label))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
