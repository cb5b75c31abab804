"""A Tune function trainable that drives any family's trainer, one MLflow child run per trial.

The trial runs the same chunked loop as ``adl train`` (``pipelines/runner.run_trainer``) on the same
trainer; after each chunk it reports to Tune with a checkpoint of the trainer's state (loaded with
``weights_only=True``) and the trial's wall clock, so a retried trial (FailureConfig) or a PBT
exploit continues from it. The trial finds its own MLflow run by the ``adl.trial_id`` tag, so a
retry appends to the same run instead of opening a second one. A trial that raises leaves a FAILED
run with its traceback (``error.txt``) and an ``adl.error`` tag; one that Tune stops (``SystemExit``
from ``tune.report``: a scheduler's early stop, or a stopped sweep) is closed KILLED, and the driver
turns an early stop into FINISHED.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import apply_values, build
from components.interfaces import Trainer
from pipelines.families import get_family
from pipelines.runner import load_checkpoint, run_trainer, save_checkpoint
from pipelines.tracking import MlflowTracker, find_trial_run, tracked_run

TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"
ERROR_FILE = "error.txt"  # a failed trial's traceback, on its MLflow run


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one sweep shares (passed once with ``tune.with_parameters``)."""

    family: str
    base_config: dict[str, Any]  # the family config as plain data, sweep overrides applied
    tracking_uri: str
    experiment: str
    parent_run_id: str
    sweep_name: str
    driver_cwd: str
    artifacts_every: int = 1  # log write_artifacts(final=False) every this many reports


class TuneReporter:
    """After each chunk: pictures every ``artifacts_every`` reports, a checkpoint, ``tune.report``.

    The last report first logs the final artifacts and checkpoint and closes the run FINISHED:
    Tune may stop the trial as soon as it reports."""

    def __init__(self, trainer: Trainer, tracker: MlflowTracker, artifacts_every: int) -> None:
        self.trainer, self.tracker, self.artifacts_every = trainer, tracker, artifacts_every
        self.reports = 0

    def __call__(self, metrics: dict[str, float], done: bool) -> None:
        from ray import tune

        trainer, tracker = self.trainer, self.tracker
        self.reports += 1
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            if self.reports % self.artifacts_every == 0:
                for p in trainer.write_artifacts(out / "artifacts", final=False):
                    tracker.log_artifact(p, f"reports/step_{trainer.position:08d}")
            save_checkpoint(trainer, out / "ckpt" / TRAINER_FILE)
            (out / "ckpt" / META_FILE).write_text(json.dumps({"wall_s": metrics["wall_s"]}))
            if done:  # final artifacts and checkpoint land on the run before Tune may stop us
                for p in trainer.write_artifacts(out / "final", final=True):
                    tracker.log_artifact(p)
                tracker.log_artifact(out / "ckpt" / TRAINER_FILE)
                tracker.finish("FINISHED")
            tune.report(
                {**metrics, "position": trainer.position, "mlflow_run_id": tracker.run_id},
                checkpoint=tune.Checkpoint.from_directory(str(out / "ckpt")),
            )


def sweep_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """One trial: its child run is opened (or found again, for a retry) before anything can fail, so
    that a trial that raises is a FAILED run with its traceback as the artifact ``error.txt``."""
    from ray import tune

    if os.path.isdir(spec.driver_cwd):
        os.chdir(spec.driver_cwd)  # relative data paths mean what they meant to the driver
    family = get_family(spec.family)
    cfg = build(family.config_cls, apply_values(spec.base_config, config))  # checked before Ray
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    existing = find_trial_run(spec.tracking_uri, spec.parent_run_id, trial_id)
    with tracked_run(
        spec.tracking_uri,
        spec.experiment,
        config=cfg if existing is None else None,
        params={f"sweep.{k}": v for k, v in config.items()} if existing is None else None,
        run_name=ctx.get_trial_name(),
        parent_run_id=spec.parent_run_id,
        tags={"adl.family": spec.family, "adl.trial_id": trial_id, "adl.sweep": spec.sweep_name},
        run_id=existing,
    ) as tracker:
        try:
            _train(family, cfg, tracker, spec)
        except SystemExit:  # Tune stopped the trial (a scheduler's early stop, or the sweep's stop)
            tracker.set_tags({"adl.stopped_by": "tune"})
            tracker.finish("KILLED")  # the driver closes early stops FINISHED (close_stopped_runs)
            raise
        except Exception:
            tracker.log_text(traceback.format_exc(), ERROR_FILE)
            tracker.set_tags({"adl.error": traceback.format_exc(limit=0).strip()[:500]})
            raise  # the run ends FAILED, and Tune retries the trial (max_failures) or records it errored


def _train(family: Any, cfg: Any, tracker: MlflowTracker, spec: TrialSpec) -> None:
    """Build the trainer, continue from the trial's checkpoint (a retry, a PBT exploit), run it."""
    from ray import tune

    trainer = family.build(cfg)
    wall_before = 0.0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(Path(d) / TRAINER_FILE))
            wall_before = json.loads((Path(d) / META_FILE).read_text())["wall_s"]
    run_trainer(
        trainer,
        tracker,
        progress=False,
        clock_from=time.time() - wall_before,
        on_report=TuneReporter(trainer, tracker, spec.artifacts_every),
    )
