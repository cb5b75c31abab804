"""Pictures and files for tabular runs: learning curves, a greedy-policy/value map, the Q-table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

# Grid-world actions in gymnasium's toy-text order differ per env; both use (row, col) deltas.
_ARROWS_FROZENLAKE = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}  # left, down, right, up
_ARROWS_CLIFF = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # up, right, down, left


def write_q_table(q: np.ndarray, out_dir: Path) -> list[Path]:
    """The table as ``q_table.npy`` (load with allow_pickle=False) and ``q_table.parquet``."""
    npy = out_dir / "q_table.npy"
    np.save(npy, q, allow_pickle=False)
    table = pa.table({"state": np.arange(q.shape[0]), **{f"q_a{a}": q[:, a] for a in range(q.shape[1])}})
    pqt = out_dir / "q_table.parquet"
    pq.write_table(table, pqt)
    return [npy, pqt]


def plot_learning_curves(history: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    keys = [
        k
        for k in ("train_return", "eval_return", "success_rate", "max_abs_q_error", "epsilon")
        if k in history
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        xs, ys = zip(*history[key]) if history[key] else ((), ())
        ax.plot(xs, ys)
        ax.set_title(key)
        ax.set_xlabel("episode")
        if key == "max_abs_q_error":
            ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_grid_policy(
    q: np.ndarray, shape: tuple[int, int], path: Path, title: str, desc: object = None
) -> Path:
    """Heatmap of V(s) = max_a Q(s,a) with an arrow for the greedy action in every cell."""
    rows, cols = shape
    v = q.max(axis=1).reshape(rows, cols)
    arrows = _ARROWS_CLIFF if title.startswith("CliffWalking") else _ARROWS_FROZENLAKE
    fig, ax = plt.subplots(figsize=(0.6 * cols + 2, 0.6 * rows + 1))
    im = ax.imshow(v, cmap="viridis")
    fig.colorbar(im, ax=ax, label="max_a Q(s, a)")
    for s in range(rows * cols):
        r, c = divmod(s, cols)
        label = desc[r][c].decode() if desc is not None and hasattr(desc[r][c], "decode") else ""  # type: ignore[index]
        if label in ("H", "G"):
            ax.text(c, r, label, ha="center", va="center", color="white", fontsize=12, weight="bold")
            continue
        if np.allclose(q[s], q[s, 0]):
            continue  # untouched or all-equal: no preferred action
        dr, dc = arrows[int(np.argmax(q[s]))]
        ax.arrow(c - 0.25 * dc, r - 0.25 * dr, 0.4 * dc, 0.4 * dr, head_width=0.15, color="white")
    ax.set_title(f"{title}: greedy policy and value")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
