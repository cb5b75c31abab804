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


def show_canvas(ax: Any, canvas: np.ndarray) -> None:
    """A grid of images in [0, 1] ([H, W, C]; one channel drawn as ink on paper), pixels as pixels."""
    gray = canvas.shape[-1] == 1
    ax.imshow(
        canvas[..., 0] if gray else canvas[..., :3],
        cmap="gray_r" if gray else None,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )


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
    show_canvas(ax, canvas)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_curves(
    history: Mapping[str, Sequence[Sequence[float]]],
    panels: Sequence[Sequence[str]],
    path: Path,
    title: str,
    columns: int = 3,
) -> Path:
    """One panel per group of metrics in ``panels`` (groups with no history are left out), each a set
    of curves against the generator step, named after its first metric; ``columns`` panels a row."""
    groups = [[k for k in group if history.get(k)] for group in panels]
    groups = [g for g in groups if g]
    cols = max(1, min(columns, len(groups)))
    rows = max(1, math.ceil(len(groups) / cols))
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.4), dpi=100)  # each panel ≥ 400 × 300 px, and a title
    for i, group in enumerate(groups):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key in group:
            pts = np.asarray(history[key], dtype=float)
            ax.plot(pts[:, 0], pts[:, 1], lw=1.2, label=key)
        ax.set_xlabel("generator step")
        ax.set_title(group[0], fontsize=9)
        ax.grid(alpha=0.3)
        if group[0].endswith("distance") and all(p[1] > 0 for k in group for p in history[k]):
            ax.set_yscale("log")  # distances fall by orders of magnitude
        if len(group) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_report_rows(
    images: torch.Tensor, steps: Sequence[int], path: Path, title: str, rows: int = 16
) -> Path:
    """One row of images per report, [R, N, C, H, W] uint8 (the same latents in every row), labelled
    by step; at most ``rows`` rows, evenly spaced, the last report always among them."""
    r = len(images)
    keep = sorted({round(i * (r - 1) / max(rows - 1, 1)) for i in range(min(rows, r))}) if r > 1 else [0]
    x = images[keep].float().div(255).numpy()  # [R', N, C, H, W]
    n, c, h, w = x.shape[1:]
    canvas = np.ones((len(keep) * (h + 1) + 1, n * (w + 1) + 1, c), dtype=np.float32)
    for i in range(len(keep)):
        for j in range(n):
            canvas[1 + i * (h + 1) : 1 + i * (h + 1) + h, 1 + j * (w + 1) : 1 + j * (w + 1) + w] = x[
                i, j
            ].transpose(1, 2, 0)
    fig = Figure(figsize=(n * 0.45 + 1.2, len(keep) * 0.45 + 0.7), dpi=110)
    ax = fig.add_subplot()
    show_canvas(ax, canvas)
    ax.set_yticks([1 + i * (h + 1) + h / 2 for i in range(len(keep))])
    ax.set_yticklabels([f"step {steps[k]}" for k in keep], fontsize=6)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_sweep(results: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path:
    """Each trial's ``metric`` curve against the generator step and, where the trials reported their
    wall clock (``wall_s``), against wall seconds; labelled by the trial's overrides."""
    curves = []
    for r in results:
        hist = [h for h in r.get("history") or [] if metric in h]
        if not hist:
            continue
        steps = [h.get("position", h.get("training_iteration", i + 1)) for i, h in enumerate(hist)]
        walls = [h.get("wall_s") for h in hist]
        label = ", ".join(f"{k}={_short(v)}" for k, v in sorted((r.get("config") or {}).items()))
        curves.append((label[:60] or "trial", steps, walls, [h[metric] for h in hist]))
    timed = bool(curves) and all(all(w is not None for w in c[2]) for c in curves)
    fig = Figure(figsize=(12 if timed else 7, 4), dpi=100)
    axes = [fig.add_subplot(1, 2 if timed else 1, i + 1) for i in range(2 if timed else 1)]
    for label, steps, walls, values in curves:
        (line,) = axes[0].plot(steps, values, marker=".", lw=1, label=label)
        if timed:
            axes[1].plot(walls, values, marker=".", lw=1, color=line.get_color(), label=label)
    axes[0].set_xlabel("generator step")
    if timed:
        axes[1].set_xlabel("wall seconds (training, evaluation and reports)")
    for ax in axes:
        ax.set_ylabel(metric)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if curves:
        axes[-1].legend(fontsize=6)
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
