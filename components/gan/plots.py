"""Figures of a GAN run: sample scatters over the mixture, digit grids, learning curves, sweep summaries.

Built on ``matplotlib.figure.Figure`` rather than pyplot: no global figure state, so trials running
in threads can draw at the same time, and no display backend is needed. Tensors may come from any
device and dtype; each figure copies what it draws to the host as float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle


def plot_points(
    samples: torch.Tensor,
    real: torch.Tensor,
    path: Path,
    title: str,
    modes: torch.Tensor | None = None,
    radius: float = 0.0,
) -> Path:
    """Generated points over real ones, with each mode's high-quality disk (radius k·σ) drawn."""
    fig = Figure(figsize=(5, 5), dpi=110)
    ax = fig.add_subplot()
    r, s = _host(real), _host(samples)
    ax.scatter(r[:, 0], r[:, 1], s=3, c="tab:blue", alpha=0.25, label="data", linewidths=0)
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:orange", alpha=0.5, label="generated", linewidths=0)
    if modes is not None:
        for m in _host(modes):
            ax.add_patch(Circle((float(m[0]), float(m[1])), radius, fill=False, lw=0.6, color="k"))
        span = float(modes.abs().max()) + 1.0
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_image_grid(images: torch.Tensor, path: Path, title: str, columns: int = 8) -> Path:
    """A grid of images [N, C, H, W] in [−1, 1] (one channel shown grey, three as RGB)."""
    n = len(images)
    rows = math.ceil(n / columns)
    x = _host((images.clamp(-1, 1) + 1) / 2)
    c, h, w = x.shape[1:]
    canvas = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), dtype=np.float32)
    for i in range(n):
        r0, c0 = 1 + (i // columns) * (h + 1), 1 + (i % columns) * (w + 1)
        canvas[r0 : r0 + h, c0 : c0 + w] = x[i].transpose(1, 2, 0)
    fig = Figure(figsize=(columns * 0.5 + 0.4, rows * 0.5 + 0.6), dpi=110)
    ax = fig.add_subplot()
    ax.imshow(
        canvas[..., 0] if c == 1 else canvas[..., :3],
        cmap="gray_r" if c == 1 else None,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_curves(
    history: Mapping[str, Sequence[Sequence[float]]], keys: Sequence[str], path: Path, title: str
) -> Path:
    """One panel per metric in ``keys`` (those present), each a curve of value against generator step,
    three to a row: a row of five or seven is a strip too thin to read where MLflow shows it."""
    keys = [k for k in keys if history.get(k)]
    cols = min(len(keys), 3) or 1
    rows = max(math.ceil(len(keys) / cols), 1)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.4), dpi=100)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = np.asarray(history[key], dtype=float)
        ax.plot(pts[:, 0], pts[:, 1], lw=1.2)
        ax.set_xlabel("generator step")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_sweep(results: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path:
    """Each trial's ``metric`` curve, labelled by its overrides: a sweep at a glance."""
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    for r in results:
        pts = [
            (h.get("position", h.get("training_iteration", i + 1)), h[metric])
            for i, h in enumerate(r.get("history") or [])
            if metric in h
        ]
        if not pts:
            continue
        label = ", ".join(f"{k}={_short(v)}" for k, v in sorted((r.get("config") or {}).items()))
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker=".", lw=1, label=label[:60] or "trial")
    ax.set_xlabel("generator step")
    ax.set_ylabel(metric)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_discriminator(
    x: torch.Tensor,
    d: torch.Tensor,
    d_star: torch.Tensor,
    p_data: torch.Tensor,
    p_g: torch.Tensor,
    path: Path,
    title: str,
) -> Path:
    """D(x) against the optimal D*(x) over a 1-D grid, with both densities drawn underneath."""
    xs = _host(x).reshape(-1)
    fig = Figure(figsize=(6, 4), dpi=110)
    ax = fig.add_subplot()
    ax.fill_between(xs, _host(p_data), color="tab:blue", alpha=0.15, label="p_data")
    ax.fill_between(xs, _host(p_g), color="tab:orange", alpha=0.15, label="p_G")
    ax.plot(xs, _host(d_star), color="k", lw=1.5, ls="--", label="D* = p_data / (p_data + p_G)")
    ax.plot(xs, _host(d), color="tab:red", lw=1.5, label="D (trained)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("x")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
