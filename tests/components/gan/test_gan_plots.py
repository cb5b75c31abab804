"""The GAN's curves.png: panels large enough to read where MLflow shows the picture."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest

from components.gan.plots import plot_curves
from components.gan.trainer import CURVE_PANELS


@pytest.mark.parametrize("n_keys", [1, 2, 5, 7])
def test_curves_are_three_to_a_row_not_a_strip(tmp_path, n_keys):
    panels = CURVE_PANELS[:n_keys]
    history = {k: [(s, 1.0 / (1 + s)) for s in range(0, 1000, 50)] for group in panels for k in group}
    path = plot_curves(history, panels, tmp_path / "curves.png", "ring8 wgan_gp")
    height, width = mpimg.imread(path).shape[:2]
    cols = min(n_keys, 3)
    rows = -(-n_keys // 3)
    assert width / cols >= 400 and (height - 40) / rows >= 300  # each panel at least 400 × 300 px
    assert width / height <= 3.5  # five in a row made a 2000 × 320 strip (6:1)
