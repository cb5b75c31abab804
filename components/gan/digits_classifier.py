"""A small digits classifier whose features score generated digits (Fréchet distance, class coverage).

There is no Inception network offline, so adl trains its own feature extractor once per machine:
a two-conv CNN on a stratified 80 % split of sklearn's 1,797 digits (seed 0), Adam 1e-3, batch 64,
30 epochs, on [−1, 1] inputs. It reaches 97.5 % on the held-out 20 %. The weights are cached under
``$ADL_CACHE_DIR`` (default ``~/.cache/adl``), keyed by a hash of this recipe, and reused; training
takes ~5 s of CPU on one core. Features are the 64-d penultimate activations. The classifier is
always trained on the CPU (the cache is the same file for every device) and moved to the scoring
device afterwards.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Recipe:
    """How the feature classifier is trained; any change gets a new cache file."""

    split: float = 0.8  # stratified train share
    seed: int = 0
    lr: float = 1e-3  # Adam
    batch: int = 64
    epochs: int = 30
    arch: str = "conv16-conv32-fc64"


RECIPE = Recipe()


class DigitsClassifier(nn.Module):
    """[B, 1, 8, 8] → 64 features → 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8 → 4
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4 → 2
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DigitsSplit(NamedTuple):
    x_train: torch.Tensor  # [N, 1, 8, 8] in [−1, 1]
    y_train: torch.Tensor  # [N]
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_split() -> DigitsSplit:
    """The stratified train/test split the classifier is trained and tested on."""
    from sklearn.model_selection import train_test_split

    x, y = load_digits_images()
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), train_size=RECIPE.split, random_state=RECIPE.seed, stratify=y.numpy()
    )
    return DigitsSplit(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def train_classifier() -> DigitsClassifier:
    """Train the classifier by :data:`RECIPE`, on one thread (deterministic; ~5 s of CPU).

    One thread because the model is tiny: on a busy 2-core machine two threads spent 6× longer.
    """
    split = digits_split()
    gen = torch.Generator(device="cpu").manual_seed(RECIPE.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.device("cpu"), torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(RECIPE.seed)
            model = DigitsClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=RECIPE.lr)
        n = len(split.y_train)
        for _ in range(RECIPE.epochs):
            perm = torch.randperm(n, generator=gen, device="cpu")
            for i in range(0, n, RECIPE.batch):
                b = perm[i : i + RECIPE.batch]
                loss = nn.functional.cross_entropy(model(split.x_train[b]), split.y_train[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def cache_path() -> Path:
    key = hashlib.sha256(repr(RECIPE).encode()).hexdigest()[:12]
    root = Path(os.environ.get("ADL_CACHE_DIR") or Path.home() / ".cache" / "adl")
    return root / f"digits_classifier_{key}.pt"


def load_classifier() -> DigitsClassifier:
    """The cached classifier, training and caching it on first use (atomic write)."""
    path = cache_path()
    with torch.device("cpu"):
        model = DigitsClassifier()
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:
            pass  # a torn or stale file: retrain and overwrite
    model = train_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


class DigitsScorer:
    """Fréchet distance and class coverage of generated digits against all 1,797 real ones, with the
    classifier on ``device`` (features are computed where the samples are; the 64×64 covariance and
    its matrix square root are computed on the host)."""

    def __init__(self, model: DigitsClassifier | None = None, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = (model or load_classifier()).to(self.device)
        x, _ = load_digits_images()
        self.mu, self.cov = gaussian_stats(self.features(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x.to(self.device, torch.float32))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.features(x)).argmax(1)

    def frechet(self, x: torch.Tensor) -> float:
        mu, cov = gaussian_stats(self.features(x))
        return frechet_distance(mu, cov, self.mu, self.cov)
