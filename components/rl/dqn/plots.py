"""The DQN learning-curve picture: training and greedy evaluation returns, loss and mean Q."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_dqn_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
