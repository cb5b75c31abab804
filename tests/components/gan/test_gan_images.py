"""data.kind: images — a folder of PNG/JPEG files the test writes, read with Pillow, and each refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from components.config import ConfigError, build
from components.gan.config import GanConfig
from components.gan.data import make_source
from components.gan.images import load_image_folder
from components.gan.trainer import GanTrainer


def write_folder(root: Path) -> Path:
    """Five images of odd sizes and modes, one in a nested folder, one upper-case suffix, plus a text
    file that must be ignored."""
    root.mkdir()
    Image.new("RGB", (41, 23), (255, 0, 127)).save(root / "a_rgb.png")  # wide, odd size
    Image.new("L", (17, 29), 200).save(root / "b_gray.png")  # tall, odd, one channel
    Image.new("RGBA", (12, 12), (10, 20, 30, 128)).save(root / "c_rgba.png")
    pal = Image.new("P", (9, 9), 0)
    pal.putpalette([0, 0, 255] + [0] * 765)
    pal.save(root / "d_palette.png")
    (root / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (33, 33), (0, 255, 0)).save(root / "nested" / "deeper" / "e.JPG", quality=95)
    (root / "notes.txt").write_text("not an image")
    return root


def test_every_image_under_the_folder_is_read_cropped_resized_and_scaled(tmp_path: Path) -> None:
    x = load_image_folder(write_folder(tmp_path / "imgs"), 8, 3)
    assert x.shape == (5, 3, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    # Sorted by path: a_rgb, b_gray, c_rgba, d_palette, nested/deeper/e.JPG. Solid colours stay solid
    # through crop and resize, and 0…255 maps to [−1, 1] as v / 127.5 − 1.
    expect = {0: (255, 0, 127), 1: (200, 200, 200), 2: (10, 20, 30), 3: (0, 0, 255)}
    for i, rgb in expect.items():
        want = torch.tensor(rgb, dtype=torch.float32, device="cpu") / 127.5 - 1
        torch.testing.assert_close(x[i], want[:, None, None].expand(3, 8, 8), rtol=0, atol=1e-6)
    green = x[4].mean(dim=(1, 2))  # JPEG is lossy: close, not exact
    torch.testing.assert_close(green, torch.tensor([-1.0, 1.0, -1.0], device="cpu"), rtol=0, atol=0.03)


def test_grayscale_uses_the_luma_of_rgb_images(tmp_path: Path) -> None:
    root = tmp_path / "g"
    root.mkdir()
    Image.new("RGB", (10, 10), (200, 100, 50)).save(root / "a.png")
    Image.new("L", (7, 5), 0).save(root / "b.png")
    x = load_image_folder(root, 4, 1)
    assert x.shape == (2, 1, 4, 4)
    luma = round(200 * 299 / 1000 + 100 * 587 / 1000 + 50 * 114 / 1000)  # ITU-R 601-2, Pillow's L
    torch.testing.assert_close(x[0], torch.full_like(x[0], luma / 127.5 - 1), rtol=0, atol=1e-6)
    assert torch.all(x[1] == -1)


@pytest.mark.parametrize("wide", [True, False], ids=["wide", "tall"])
def test_the_crop_is_centred(tmp_path: Path, wide: bool) -> None:
    """A 3:1 image, black except its middle third: the centred square is the white part."""
    a = np.zeros((20, 60), np.uint8)
    a[:, 20:40] = 255
    root = tmp_path / "c"
    root.mkdir()
    Image.fromarray(a if wide else a.T.copy()).save(root / "a.png")
    Image.new("L", (3, 3), 0).save(root / "b.png")
    x = load_image_folder(root, 8, 1)[0, 0]
    inner = x[:, 1:-1] if wide else x[1:-1, :]  # bicubic reaches one pixel past the crop at the edges
    assert torch.all(inner == 1.0) and x.mean() > 0.9


def test_a_trainer_runs_on_the_folder_without_touching_the_default_device(
    tmp_path: Path, meta_default_device: None
) -> None:
    cfg = build(
        GanConfig,
        {
            "data": {"kind": "images", "path": str(write_folder(tmp_path / "imgs")), "image_size": 8},
            "model": {"conv_stages": 2, "z_dim": 8, "hidden": 8},
            "train": {"loss": "wgan_gp", "steps": 1, "batch_size": 4, "device": "cpu"},
            "report_every": 1,
            "eval": {"samples": 16},
        },
    )
    t = GanTrainer(cfg)
    assert t.source.name == "imgs" and t.source.sample_shape == (3, 8, 8)
    m = t.run_chunk()
    assert np.isfinite(m["eval_distance"]) and t.sample().shape == (16, 3, 8, 8)
    assert {p.name for p in t.write_artifacts(tmp_path / "out")} >= {"samples.png", "generator.pt"}


# -- refusals -------------------------------------------------------------------------------------------


def images_cfg(path: Path, **data: object) -> GanConfig:
    return build(GanConfig, {"data": {"kind": "images", "path": str(path), **data}})


@pytest.mark.parametrize("content", ["nothing", "text only", "one image"])
def test_a_folder_without_two_images_is_refused(tmp_path: Path, content: str) -> None:
    root = tmp_path / "empty"
    (root / "sub").mkdir(parents=True)
    if content == "text only":
        (root / "sub" / "a.txt").write_text("x")
    if content == "one image":
        Image.new("RGB", (8, 8)).save(root / "sub" / "a.png")
    with pytest.raises(ConfigError, match=r"data\.path: (no|only one) PNG or JPEG files under .*empty"):
        make_source(images_cfg(root).data)


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_file_pillow_cannot_read_is_refused_by_name(tmp_path: Path, how: str) -> None:
    root = write_folder(tmp_path / "imgs")
    bad = root / "nested" / "zz_bad.png"
    if how == "garbage":
        bad.write_bytes(b"this is not a PNG")
    else:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ConfigError) as e:
        make_source(images_cfg(root).data)
    assert str(e.value).startswith(f"data.path: {bad} cannot be read as an image")


def test_a_missing_folder_or_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.path: folder not found"):
        make_source(images_cfg(tmp_path / "nope").data)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="is not a folder"):
        make_source(images_cfg(tmp_path / "x.png").data)
    with pytest.raises(ConfigError, match="data.path: kind 'images' needs a folder"):
        build(GanConfig, {"data": {"kind": "images"}})


@pytest.mark.parametrize(
    ("size", "stages", "path"),
    [(4, 3, "4 → 2 → 1 → 0"), (20, 3, "20 → 10 → 5 → 2"), (2, 2, "2 → 1 → 0"), (12, 3, "12 → 6 → 3 → 1")],
)
def test_an_image_size_the_dcgan_stages_cannot_produce_is_refused(
    tmp_path: Path, size: int, stages: int, path: str
) -> None:
    """Checked by the conv arithmetic when the config loads, before any file is read."""
    with pytest.raises(ConfigError) as e:
        build(
            GanConfig,
            {
                "data": {"kind": "images", "path": str(tmp_path), "image_size": size},
                "model": {"conv_stages": stages},
            },
        )
    msg = str(e.value)
    assert msg.startswith(f"data.image_size: {size} does not fit model.conv_stages={stages}")
    assert path in msg and f"multiples of {2**stages}" in msg


def test_image_sizes_that_fit_and_channels() -> None:
    for size, stages in [(8, 3), (32, 3), (24, 3), (64, 4), (4, 2)]:
        build(
            GanConfig,
            {"data": {"kind": "images", "path": "x", "image_size": size}, "model": {"conv_stages": stages}},
        )
    build(GanConfig, {"data": {"kind": "images", "path": "x", "image_size": 5}, "model": {"arch": "mlp"}})
    with pytest.raises(ConfigError, match="data.channels: 2 is not allowed; allowed: 1, 3"):
        build(GanConfig, {"data": {"kind": "images", "path": "x", "channels": 2}})
