"""What a run trained on, described for the tracker: a name, where the data came from, a digest that
changes when the data does, and the shape and type of one sample.

MLflow shows these in the runs table's Datasets column, so two runs on different data (another image
folder, another Markov table) are told apart at a glance, and runs on the same data share a digest.
A finite set is hashed by content; a set drawn fresh every batch (a mixture, a Markov chain, the
adding problem) is hashed by its recipe: the config values that define the distribution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DIGEST_CHARS = 10
HASHED_ROWS = 1000  # rows hashed byte for byte; every row still enters through a float64 sum


@dataclass(frozen=True)
class DataCard:
    """One dataset as a run's input. ``rows`` is ``None`` for data drawn fresh every batch."""

    name: str
    source: str  # a path for a user's files, else what made the data (a function, a recipe)
    digest: str
    sample_shape: tuple[int, ...]  # one sample: [2] for points, [C, H, W] for images, [T] for a window
    dtype: str  # numpy's name for the sample's type: "float32", "int64"
    rows: int | None = None
    local: bool = False  # the source is a file or folder on disk (MLflow's "local" source type)
    context: str = "training"

    def shape(self) -> list[int]:
        """The whole set's shape, with -1 for the rows of data drawn without end."""
        return [-1 if self.rows is None else self.rows, *self.sample_shape]


def array_digest(x: Any) -> str:
    """A digest of an array or CPU tensor's content: shape, type, the first rows byte for byte, and
    the float64 sum of every value (a change anywhere in a large set changes the sum)."""
    a = np.asarray(x)
    h = hashlib.sha256(f"{a.shape}|{a.dtype}".encode())
    h.update(np.ascontiguousarray(a[:HASHED_ROWS]).tobytes())
    h.update(repr(float(a.sum(dtype=np.float64))).encode())
    return h.hexdigest()[:DIGEST_CHARS]


def recipe_digest(recipe: Mapping[str, Any]) -> str:
    """A digest of the config values that define a generated distribution (key order ignored)."""
    text = json.dumps(dict(recipe), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]
