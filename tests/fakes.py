"""Shared test fakes: a tracker that keeps in memory what a pipeline logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.config import flatten
from components.data_card import DataCard
from pipelines.tracking import NullTracker


class MemoryTracker(NullTracker):
    """Keeps everything in memory, for tests that check what a pipeline logs."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.artifacts: list[str] = []
        self.texts: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.status: str | None = None
        self.datasets: list[DataCard] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(flatten(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step, float(v)))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts.append(f"{artifact_path}/{name}" if artifact_path else name)

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text
        self.artifacts.append(name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def log_datasets(self, cards: Sequence[DataCard]) -> None:
        self.datasets.extend(cards)

    def finish(self, status: str = "FINISHED") -> None:
        self.status = status
