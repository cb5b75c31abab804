"""A Tune function trainable that drives any family's trainer, one MLflow child run per trial.

The trial is the same trainer ``adl train`` runs locally: ``run_chunk()`` → log the metrics to the
trial's MLflow run → ``tune.report(metrics, checkpoint=...)``. The checkpoint holds the trainer's
state (loaded with ``weights_only=True``) and the trial's wall clock, so a retried trial
(FailureConfig) or a PBT exploit continues from it. The trial finds its own MLflow run by the
``adl.trial_id`` tag, so a retry appends to the same run instead of opening a second one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import apply_values, build, dump_yaml, to_dict
from pipelines.families import get_family
from pipelines.runner import check_finite, load_checkpoint, save_checkpoint
from pipelines.tracking import MlflowTracker

TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"


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


def find_trial_run(tracker_uri: str, experiment_id: str, parent_run_id: str, trial_id: str) -> str | None:
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracker_uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`adl.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def sweep_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    from ray import tune

    if os.path.isdir(spec.driver_cwd):
        os.chdir(spec.driver_cwd)  # relative data paths mean what they meant to the driver
    family = get_family(spec.family)
    cfg = build(family.config_cls, apply_values(spec.base_config, config))
    trainer = family.build(cfg)  # type: ignore[misc]
    wall_before = 0.0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(Path(d) / TRAINER_FILE))
            wall_before = json.loads((Path(d) / META_FILE).read_text())["wall_s"]

    ctx = tune.get_context()
    trial_id, trial_name = ctx.get_trial_id(), ctx.get_trial_name()
    probe = MlflowTracker(spec.tracking_uri, spec.experiment, run_id=spec.parent_run_id)
    existing = find_trial_run(spec.tracking_uri, probe.experiment_id, spec.parent_run_id, trial_id)
    tracker = MlflowTracker(
        spec.tracking_uri,
        spec.experiment,
        run_name=trial_name,
        parent_run_id=spec.parent_run_id,
        tags={"adl.family": spec.family, "adl.trial_id": trial_id, "adl.sweep": spec.sweep_name},
        run_id=existing,
    )
    if existing is None:
        tracker.log_params(to_dict(cfg))
        tracker.log_params({f"sweep.{k}": v for k, v in config.items()})
        tracker.log_text(dump_yaml(cfg), "config.yaml")

    t0 = time.time() - wall_before
    reports = 0
    status = "FAILED"
    try:
        while trainer.position < trainer.total:
            metrics = trainer.run_chunk()
            metrics["wall_s"] = time.time() - t0
            tracker.log_metrics(metrics, step=trainer.position)
            check_finite(metrics, trainer.position)
            reports += 1
            with tempfile.TemporaryDirectory() as d:
                out = Path(d)
                if reports % spec.artifacts_every == 0:
                    for p in trainer.write_artifacts(out / "artifacts", final=False):
                        tracker.log_artifact(p, f"reports/step_{trainer.position:08d}")
                save_checkpoint(trainer, out / "ckpt" / TRAINER_FILE)
                (out / "ckpt" / META_FILE).write_text(json.dumps({"wall_s": metrics["wall_s"]}))
                done = trainer.position >= trainer.total
                if done:  # final artifacts and checkpoint land on the run before Tune may stop us
                    for p in trainer.write_artifacts(out / "final", final=True):
                        tracker.log_artifact(p)
                    tracker.log_artifact(out / "ckpt" / TRAINER_FILE)
                    tracker.finish("FINISHED")
                    status = "FINISHED"
                tune.report(
                    {**metrics, "position": trainer.position, "mlflow_run_id": tracker.run_id},
                    checkpoint=tune.Checkpoint.from_directory(str(out / "ckpt")),
                )
    finally:
        if status != "FINISHED":
            tracker.finish("FAILED")
