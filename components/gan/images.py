"""A folder of the user's own images as GAN training data (``data.kind: images``), read with Pillow.

Every ``.png``, ``.jpg`` and ``.jpeg`` file under the folder (searched recursively, in sorted path
order so a run is reproducible) is turned upright by its EXIF orientation, converted to grayscale
(``channels: 1``) or RGB (``channels: 3``), centre-cropped to a square, resized to ``image_size`` with
bicubic filtering and scaled from 0…255 to [−1, 1], the range of the DCGAN generator's tanh output.
The whole set is decoded once, up front, so a bad file stops the command before anything starts,
and is held as float32: N·C·S² · 4 bytes (10,000 RGB images at 64×64: 0.5 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from components.config import ConfigError

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 50_000_000  # read from the header before decoding: a 64×64 training image needs far fewer


def find_images(folder: Path) -> list[Path]:
    """Every PNG/JPEG file under ``folder`` (any depth, any case of suffix), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 [size, size, channels]; a file Pillow cannot decode raises ``ConfigError``."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow: only an image folder needs it

    try:
        with Image.open(path) as file:  # reads the header only
            width, height = file.size
            if width * height > MAX_PIXELS:  # a decompression bomb decodes to gigabytes
                raise ConfigError(
                    f"data.path: {path} is {width}×{height} pixels, over the {MAX_PIXELS:,} adl decodes "
                    f"for training images; shrink it first or remove it"
                )
            file.load()  # decode now: a truncated file fails here, not later
            img = ImageOps.exif_transpose(file)
            if img.mode == "P":
                img = img.convert("RGBA")  # palette transparency, before dropping alpha
            img = img.convert("L" if channels == 1 else "RGB")
            img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise ConfigError(
            f"data.path: {path} cannot be read as an image ({type(e).__name__}: {e}); remove or replace it"
        ) from e
    return arr.reshape(size, size, channels)


def load_image_folder(path: str | Path, size: int, channels: int) -> torch.Tensor:
    """All images under ``path`` as float32 [N, channels, size, size] in [−1, 1], on the CPU."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ConfigError(f"data.path: folder not found: {folder}")
    if not folder.is_dir():
        raise ConfigError(
            f"data.path: {folder} is not a folder; kind 'images' reads every PNG/JPEG under a folder "
            f"(for a .npy or .parquet array use data.kind: file)"
        )
    files = find_images(folder)
    if len(files) < 2:
        found = "no" if not files else "only one"
        raise ConfigError(
            f"data.path: {found} PNG or JPEG files under {folder} (searched recursively for "
            f"{', '.join(SUFFIXES)}); need at least 2"
        )
    x = np.stack([read_image(f, size, channels) for f in files])  # [N, S, S, C] uint8
    t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # [N, C, S, S]
    return t.float() / 127.5 - 1.0
