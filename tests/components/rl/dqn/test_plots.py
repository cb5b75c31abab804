"""The DQN learning-curve picture stays readable for short and long runs."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest

from components.rl.dqn.plots import dqn_curves_figure, steps_label


def history(env_steps: int) -> dict[str, list[tuple[int, float]]]:
    steps = np.linspace(0, env_steps, 120).astype(int)
    return {
        "train_return": [(int(s), float(min(500, s / 100))) for s in steps],
        "eval_return": [(int(s), 500.0) for s in steps[::10]],
        "loss": [(int(s), float(np.exp(-s / 2e4))) for s in steps],
        "mean_q": [(int(s), s / 1e3) for s in steps],
    }


@pytest.mark.parametrize("env_steps", [3_000, 52_000, 180_000, 1_300_000, 40_000_000])
def test_env_step_ticks_never_run_together(env_steps):
    """At 180k env steps the default labels (0, 25000, ... 175000) overlapped: each label's box
    must leave room before the next one, in every panel."""
    fig = dqn_curves_figure(history(env_steps))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        assert len(boxes) >= 3
        for left, right in itertools.pairwise(boxes):
            assert right.x0 - left.x1 > 5, (env_steps, [t.get_text() for t in labels])
    plt.close(fig)


def test_step_labels_are_short_and_exact():
    assert [steps_label(x) for x in (0, 500, 15_000, 2_500, 1_500_000, 40_000_000)] == [
        "0",
        "500",
        "15k",
        "2.5k",
        "1.5M",
        "40M",
    ]
