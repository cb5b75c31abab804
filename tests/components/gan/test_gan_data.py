"""Data sources: mixture geometry and statistics, digits scaling, user files and their errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from components.config import ConfigError
from components.gan.config import DataConfig
from components.gan.data import grid_modes, load_file, make_source, ring_modes


def test_ring_modes_lie_on_the_circle_evenly_spaced() -> None:
    m = ring_modes(8, 2.0)
    assert m.shape == (8, 2)
    assert torch.allclose(m.norm(dim=1), torch.full((8,), 2.0), atol=1e-6)
    # neighbouring centres are a chord 2r·sin(π/8) apart
    assert torch.allclose(
        (m - m.roll(1, 0)).norm(dim=1), torch.full((8,), 4 * math.sin(math.pi / 8)), atol=1e-5
    )


def test_grid_modes_are_pacgans_25_points() -> None:
    m = grid_modes(5, 2.0)
    assert sorted({round(v, 6) for v in m[:, 0].tolist()}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(r) for r in m.tolist()}) == 25


@pytest.mark.parametrize("kind", ["ring8", "grid25"])
def test_mixture_samples_have_the_configured_spread_and_equal_weights(kind: str) -> None:
    src = make_source(DataConfig(kind=kind, sigma=0.05))  # type: ignore[arg-type]
    assert src.modes is not None
    x = src.sample(40_000, torch.Generator().manual_seed(0))
    d, idx = torch.cdist(x, src.modes).min(dim=1)
    residual = x - src.modes[idx]
    assert residual.std(dim=0).numpy() == pytest.approx([0.05, 0.05], rel=0.03)
    share = torch.bincount(idx, minlength=len(src.modes)).double() / len(x)
    k = len(src.modes)
    assert share.numpy() == pytest.approx(np.full(k, 1 / k), abs=4 * math.sqrt((1 / k) / len(x)))


def test_digits_are_scaled_to_minus_one_one() -> None:
    src = make_source(DataConfig(kind="digits"))
    assert src.data is not None and src.data.shape == (1797, 1, 8, 8)
    assert src.data.min().item() == -1.0 and src.data.max().item() == 1.0
    assert src.is_image


def test_npy_images_and_vectors_load(tmp_path: Path) -> None:
    imgs = np.random.default_rng(0).random((10, 6, 6)).astype(np.float32)
    np.save(tmp_path / "imgs.npy", imgs)
    x = load_file(DataConfig(kind="file", path=str(tmp_path / "imgs.npy"), normalize="minmax"))
    assert x.shape == (10, 1, 6, 6)
    assert x.min().item() == pytest.approx(-1) and x.max().item() == pytest.approx(1)
    np.save(tmp_path / "vec.npy", np.arange(12.0).reshape(6, 2))
    v = load_file(DataConfig(kind="file", path=str(tmp_path / "vec.npy"), normalize="standardize"))
    assert v.mean(0).numpy() == pytest.approx([0, 0], abs=1e-6)
    assert v.std(0, unbiased=False).numpy() == pytest.approx([1, 1], abs=1e-5)


def test_parquet_rows_load_as_vectors_or_reshaped_images(tmp_path: Path) -> None:
    table = pa.table({f"p{i}": np.arange(5, dtype=np.float64) + i for i in range(4)})
    pq.write_table(table, tmp_path / "d.parquet")
    v = load_file(DataConfig(kind="file", path=str(tmp_path / "d.parquet")))
    assert v.shape == (5, 4) and v[2].tolist() == [2, 3, 4, 5]
    img = load_file(DataConfig(kind="file", path=str(tmp_path / "d.parquet"), image_shape=[1, 2, 2]))
    assert img.shape == (5, 1, 2, 2) and img[2, 0].tolist() == [[2, 3], [4, 5]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: np.save(p / "x.npy", np.zeros(5)), "expected [N, D] vectors"),
        (lambda p: np.save(p / "x.npy", np.zeros((1, 3))), "need at least 2"),
        (lambda p: np.save(p / "x.npy", np.array([[0.0, np.nan], [1, 2]])), "NaN"),
        (lambda p: (p / "x.csv").write_text("1,2\n"), "allowed: .npy, .parquet"),
    ],
    ids=["missing", "1-d", "one-sample", "nan", "suffix"],
)
def test_bad_files_raise_config_errors_naming_the_problem(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    make(tmp_path)
    name = "x.csv" if message.startswith("allowed") else "x.npy"
    with pytest.raises(ConfigError, match="data.path") as e:
        load_file(DataConfig(kind="file", path=str(tmp_path / name)))
    assert message in str(e.value)


def test_parquet_with_text_columns_and_wrong_image_shape_are_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1.0, 2.0], "name": ["x", "y"]}), tmp_path / "t.parquet")
    with pytest.raises(ConfigError, match=r"\['name'\] are not numeric"):
        load_file(DataConfig(kind="file", path=str(tmp_path / "t.parquet")))
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]}), tmp_path / "u.parquet")
    with pytest.raises(ConfigError, match="needs 9 values per sample"):
        load_file(DataConfig(kind="file", path=str(tmp_path / "u.parquet"), image_shape=[1, 3, 3]))
