"""The one chunked trial loop: a :class:`~components.interfaces.Trainer` run to its end, each chunk's
metrics logged at the trainer's position, with a progress bar.

``adl train qlearn|gan|seq`` drives it in one process (:func:`train_trainer`); a Tune trial
(``pipelines/distributed/tune_trial.py``) drives the very same loop and reports to Tune from
``on_report``. Checkpoints are written atomically and read with ``weights_only=True``.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from components.config import ConfigError
from components.interfaces import Trainer
from pipelines.tracking import Tracker, tracked_run
from pipelines.tracking.uri import where_to_look
from pipelines.writable import check_run_folders


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
    if isinstance(state, dict):
        return {k: to_tensors(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_tensors(v) for v in state)
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(state))
    if isinstance(state, np.generic):
        return state.item()
    return state


def save_checkpoint(trainer: Trainer, path: Path) -> Path:
    """Write the trainer's state atomically: a temporary name, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(to_tensors(trainer.state_dict()), tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (no pickle of arbitrary objects)."""
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]
    except Exception as e:
        raise ConfigError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e


def run_trainer(
    trainer: Trainer,
    tracker: Tracker,
    *,
    progress: bool = True,
    show: tuple[str, ...] = (),
    clock_from: float | None = None,
    on_report: Callable[[dict[str, float], bool], None] | None = None,
) -> dict[str, float]:
    """Run ``trainer`` to its end, logging every chunk's metrics at the trainer's position.

    With ``clock_from`` each chunk also reports ``wall_s`` since then; ``on_report(metrics, done)``
    runs after each chunk is logged (a Tune trial reports and checkpoints there).
    """
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
            if clock_from is not None:
                metrics["wall_s"] = time.time() - clock_from
            tracker.log_metrics(metrics, step=trainer.position)
            check_finite(metrics, trainer.position)
            bar.update(trainer.position - before)
            bar.set_postfix({k: f"{metrics[k]:.3g}" for k in show if k in metrics}, refresh=False)
            if on_report is not None:
                on_report(metrics, trainer.position >= trainer.total)
            last = metrics
    return last


class ReportBudget:
    """When a trial may write pictures and a checkpoint: at most every ``every`` reports, and only
    while the time spent on them, the next one included (estimated by the last), stays within
    ``share`` × the training time so far. A chunk of a fast trainer takes milliseconds, a picture
    and a checkpoint seconds: at every report they would be most of the trial.

    ``allows`` is called once per report (it counts the time since the previous call as training);
    ``spent`` tells it what the heavy report cost.
    """

    FIRST_COST_S = 1.0  # the estimate before one has been measured

    def __init__(self, share: float, every: int = 1) -> None:
        self.share, self.every = share, every
        self.reports = 0
        self.train_s = self.spent_s = 0.0
        self.cost_s = self.FIRST_COST_S
        self.since = time.perf_counter()

    def allows(self, done: bool, now: float | None = None) -> bool:
        now = time.perf_counter() if now is None else now
        self.train_s += now - self.since
        self.since = now
        self.reports += 1
        if done:
            return True
        due = self.reports % self.every == 0
        return due and self.spent_s + self.cost_s <= self.share * self.train_s

    def spent(self, seconds: float, now: float | None = None) -> None:
        """A heavy report took ``seconds`` (not training time: the clock restarts after it)."""
        self.cost_s = seconds
        self.spent_s += seconds
        self.since = time.perf_counter() if now is None else now


def finish_artifacts(trainer: Trainer, tracker: Tracker, final: bool = True) -> list[str]:
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


def log_models(trainer: Trainer, tracker: Any, register: str | None = None) -> None:
    """The trainer's networks as MLflow models, linked to the run's metrics at the last step (where
    the last chunk's evaluation was logged); the first is registered as ``register``, if given."""
    from pipelines.tracking.models import log_torch_model  # MLflow's model flavour: only to log one

    for i, (name, (model, example)) in enumerate(trainer.models().items()):
        log_torch_model(tracker, model, name, example, register if i == 0 else None, step=trainer.position)


def train_trainer(family: Any, cfg: Any, ctx: Any) -> int:
    """``adl train`` for a family with a :class:`Trainer`: one tracked run, the chunked loop, artifacts."""

    trainer = family.build(cfg)  # env ids, spaces and devices are checked here, before any run opens
    check_run_folders(None)  # artifacts are staged in the temp folder: writable, or exit 2 now
    uri, where = ctx.tracking_uri, trainer.describe()
    tags = {"adl.family": family.name, "adl.config": ctx.config_name, "adl.device": where["device"]}
    with tracked_run(
        uri,
        ctx.experiment,
        config=cfg,
        params=where,
        run_name=ctx.run_name or family.run_name(cfg),
        tags=tags,
        names=family.names,
        lead_metric=family.metric,
        started=ctx.started,
    ) as tracker:
        print(f"adl: MLflow run {tracker.run_id} in experiment {ctx.experiment!r} ({uri})", file=sys.stderr)
        tracker.log_datasets(trainer.datasets())
        t0 = time.time()
        try:
            metrics = run_trainer(trainer, tracker, progress=ctx.progress, show=(family.metric,))
        finally:
            finish_artifacts(trainer, tracker)
        log_models(trainer, tracker, ctx.extra.get("register"))
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        done = f"finished {family.name} in {time.time() - t0:.1f}s: {summary}"
        tracker.note_result(done)
    print(f"\nadl: {done}")
    print(where_to_look(tracker.run_id, ctx.experiment, uri, tracker.experiment_id))
    return 0
