"""What a family's trainer offers the pipelines: the one surface ``adl train`` and Tune trials drive.

Q-learning, GAN and sequence trainers implement :class:`Trainer`; ``pipelines/runner.py`` runs any of
them chunk by chunk, logging each chunk's metrics, whether in one process or inside a Tune trial.
DQN has its own driver loop (collectors and a learner run at once), so it is not a ``Trainer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from components.data_card import DataCard


class Trainer(Protocol):
    """A resumable training run that advances in chunks and reports metrics after each."""

    unit: str  # what ``position`` counts (for the progress bar), e.g. "step" or "episode"
    position: int  # how far training has come
    total: int  # where it ends

    def run_chunk(self) -> dict[str, float]:
        """Train one chunk (the family's report interval) and return its metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors, arrays and plain data (no pickled objects)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """Write pictures and models to ``out_dir``; ``final`` adds what only the end needs."""
        ...

    def describe(self) -> dict[str, str]:
        """Where and how it trains, resolved (device, GPU name, precision): the run's params."""
        ...

    def datasets(self) -> list[DataCard]:
        """What it trains and evaluates on (MLflow's Datasets column); empty where experience comes
        from an environment."""
        ...

    def models(self) -> dict[str, tuple[Any, np.ndarray]]:
        """The networks worth keeping as models, each with a small batch of real inputs (an input
        example: it traces the export and types the signature). Empty for a table."""
        ...
