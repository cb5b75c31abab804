"""Drives a trainer locally: progress bar, metrics to the tracker, checkpoint and artifacts.

The same trainer objects run inside Tune trials (see ``pipelines/distributed/tune_trial.py``);
this is the one-process path behind ``adl train``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pipelines.tracking import Tracker


class TrainingError(RuntimeError):
    """Training cannot go on (a loss became NaN or infinite)."""


def check_finite(metrics: dict[str, float], position: int) -> None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v) and ("loss" in k or k.endswith("_error"))}
    if bad:
        raise TrainingError(
            f"non-finite values at step {position}: {bad}. Lower the learning rate, clip gradients, or "
            f"check the data; the checkpoint and artifacts written so far are kept."
        )


def to_tensors(state: Any) -> Any:
    """numpy arrays → torch tensors, so a checkpoint loads with ``torch.load(weights_only=True)``."""
    import numpy as np

    if isinstance(state, dict):
        return {k: to_tensors(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_tensors(v) for v in state)
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(state))
    if isinstance(state, np.generic):
        return state.item()
    return state


def save_checkpoint(trainer: Any, path: Path) -> Path:
    """Write the trainer's state atomically: a temporary name, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(to_tensors(trainer.state_dict()), tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (no pickle of arbitrary objects)."""
    from components.config import ConfigError

    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]
    except Exception as e:
        raise ConfigError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e


def run_trainer(
    trainer: Any, tracker: Tracker, *, progress: bool = True, show: tuple[str, ...] = ()
) -> dict[str, float]:
    """Run ``trainer`` to its end, logging every chunk's metrics at the trainer's position."""
    last: dict[str, float] = {}
    with tqdm(
        total=trainer.total,
        initial=trainer.position,
        unit=trainer.unit,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5,
    ) as bar:
        while trainer.position < trainer.total:
            before = trainer.position
            metrics = trainer.run_chunk()
            tracker.log_metrics(metrics, step=trainer.position)
            check_finite(metrics, trainer.position)
            bar.update(trainer.position - before)
            bar.set_postfix({k: f"{metrics[k]:.3g}" for k in show if k in metrics}, refresh=False)
            last = metrics
    return last


def finish_artifacts(trainer: Any, tracker: Tracker, final: bool = True) -> list[str]:
    """Write the trainer's artifacts and checkpoint to a temp folder and log them."""
    names = []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        paths = list(trainer.write_artifacts(out, final=final))
        paths.append(save_checkpoint(trainer, out / "checkpoint.pt"))
        for p in paths:
            tracker.log_artifact(p)
            names.append(p.name)
    return names
