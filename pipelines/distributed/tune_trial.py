"""A Tune function trainable that drives any family's trainer, one MLflow child run per trial.

The trial runs the same chunked loop as ``adl train`` (``pipelines/runner.run_trainer``) on the same
trainer; after each chunk it reports to Tune, with a checkpoint of the trainer's state (loaded with
``weights_only=True``) and the trial's wall clock when the report budget allows, so a retried trial
(FailureConfig) or a PBT exploit continues from it. The trial finds its own MLflow run by the
``adl.trial_id`` tag, so a retry appends to the same run instead of opening a second one. A trial
that raises leaves a FAILED run with its traceback (``error.txt``) and an ``adl.error`` tag; one that
Tune stops (``SystemExit`` from ``tune.report``: a scheduler's early stop, or a stopped sweep) is
closed KILLED, and the driver turns an early stop into FINISHED.
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

import ray
from ray import tune

from components.config import apply_values, build
from components.interfaces import Trainer
from pipelines.families import get_family
from pipelines.runner import ReportBudget, load_checkpoint, run_trainer, save_checkpoint
from pipelines.tracking import find_trial_run, tracked_run

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
    artifacts_every: int = 1  # pictures and checkpoints at most every this many reports
    overhead: float = 0.1  # ... and only while they cost at most this share of the training time
    checkpoint_every_report: bool = False  # PBT exploits checkpoints: it needs one at every report
    gpu: float = 0.0  # the GPU share each trial asked for (system metrics are sampled when > 0)
    metric: str | None = None  # what the sweep ranks by: logged first, so comparisons show it
    command: str = ""  # the sweep's own command line (a trial's process is Ray's worker, not `adl`)


def trial_run_name(config: dict[str, Any], trial_name: str) -> str:
    """``#3 alpha.start=0.1 gamma=0.9``: the trial's number and its swept values."""
    number = trial_name.rsplit("_", 1)[-1].lstrip("0") or "0"
    values = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(config.items())
    )
    return f"#{number} {values}"[:200]


class TuneReporter:
    """After each chunk: ``tune.report``, with a checkpoint and pictures when the budget allows
    (:class:`~pipelines.runner.ReportBudget`). The last report always logs the final artifacts and
    checkpoint and closes the run FINISHED first: Tune may stop the trial as soon as it reports."""

    def __init__(self, trainer: Trainer, tracker: Any, spec: TrialSpec) -> None:
        self.trainer, self.tracker = trainer, tracker
        self.budget = ReportBudget(spec.overhead, spec.artifacts_every)
        self.every_report = spec.checkpoint_every_report  # PBT: a checkpoint at each, pictures on budget

    def __call__(self, metrics: dict[str, float], done: bool) -> None:
        pictures = self.budget.allows(done)
        heavy = pictures or self.every_report
        start = time.perf_counter()
        trainer, tracker = self.trainer, self.tracker
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            checkpoint = None
            if heavy:
                if pictures and not done:
                    for p in trainer.write_artifacts(out / "artifacts", final=False):
                        tracker.log_artifact(p, f"reports/step_{trainer.position:08d}")
                save_checkpoint(trainer, out / "ckpt" / TRAINER_FILE)
                (out / "ckpt" / META_FILE).write_text(json.dumps({"wall_s": metrics["wall_s"]}))
                checkpoint = tune.Checkpoint.from_directory(str(out / "ckpt"))
            if done:  # final artifacts and checkpoint land on the run before Tune may stop us
                for p in trainer.write_artifacts(out / "final", final=True):
                    tracker.log_artifact(p)
                tracker.log_artifact(out / "ckpt" / TRAINER_FILE)
                b = self.budget  # what reporting cost, against the training it reported on
                spent = b.spent_s + time.perf_counter() - start
                tracker.set_tags({"adl.train_s": f"{b.train_s:.3f}", "adl.report_s": f"{spent:.3f}"})
                tracker.finish("FINISHED")
            if heavy:
                self.budget.spent(time.perf_counter() - start)
            tune.report(
                {**metrics, "position": trainer.position, "mlflow_run_id": tracker.run_id},
                checkpoint=checkpoint,
            )


def sweep_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """One trial: its child run is opened (or found again, for a retry) before anything can fail, so
    that a trial that raises is a FAILED run with its traceback as the artifact ``error.txt``."""
    if os.path.isdir(spec.driver_cwd):
        os.chdir(spec.driver_cwd)  # relative data paths mean what they meant to the driver
    family = get_family(spec.family)
    cfg = build(family.config_cls, apply_values(spec.base_config, config))  # checked before Ray
    ctx = tune.get_context()
    trial_id, trial_name = ctx.get_trial_id(), ctx.get_trial_name()
    existing = find_trial_run(spec.tracking_uri, spec.parent_run_id, trial_id)
    number = trial_run_name(config, trial_name).split()[0]  # "#3"
    tags = {
        "adl.family": spec.family,
        "adl.trial_id": trial_id,
        "adl.trial_name": trial_name,
        "adl.sweep": spec.sweep_name,
        "adl.swept": ",".join(sorted(config)),
        "mlflow.source.name": f"adl sweep {spec.sweep_name} (trial {number})",
        **({"adl.command": spec.command} if spec.command else {}),
    }
    with tracked_run(
        spec.tracking_uri,
        spec.experiment,
        config=cfg if existing is None else None,
        run_name=trial_run_name(config, trial_name),
        parent_run_id=spec.parent_run_id,
        tags=tags,
        run_id=existing,
        names=family.names,
        lead_metric=spec.metric,
        system_metrics=spec.gpu > 0,  # GPU utilisation and memory; the parent samples the driver's host
    ) as tracker:
        try:
            _train(family, cfg, tracker, spec, new_run=existing is None, swept=config)
        except SystemExit:  # Tune stopped the trial (a scheduler's early stop, or the sweep's stop)
            tracker.set_tags({"adl.stopped_by": "tune"})
            tracker.finish("KILLED")  # the driver closes early stops FINISHED (close_stopped_runs)
            raise
        except Exception:
            tracker.log_text(traceback.format_exc(), ERROR_FILE)
            tracker.set_tags({"adl.error": traceback.format_exc(limit=0).strip()[:500]})
            raise  # the run ends FAILED, and Tune retries the trial (max_failures) or records it errored


def _train(
    family: Any, cfg: Any, tracker: Any, spec: TrialSpec, new_run: bool, swept: dict[str, Any]
) -> None:
    """Build the trainer (on the GPU Ray assigned, with ``train.device: auto``), record where it
    trains, continue from the trial's checkpoint (a retry, a PBT exploit), run it. Under PBT, the
    searched values are logged at every start as ``hparams/<key>``: a trial that PBT exploited starts
    again with another trial's checkpoint and new values, and the run shows the schedule it got."""
    trainer = family.build(cfg)
    where = trainer.describe()
    # Where it trains now: a trial retried after its host died continues on another node.
    tracker.set_tags({"adl.device": where["device"], "adl.node_ip": ray.util.get_node_ip_address()})
    if new_run:
        tracker.log_params(where)
        tracker.log_datasets(trainer.datasets())
    wall_before = 0.0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(Path(d) / TRAINER_FILE))
            wall_before = json.loads((Path(d) / META_FILE).read_text())["wall_s"]
    if spec.checkpoint_every_report:  # PBT
        numeric = {k: v for k, v in swept.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        tracker.log_metrics({f"hparams/{k}": float(v) for k, v in numeric.items()}, step=trainer.position)
    run_trainer(
        trainer,
        tracker,
        progress=False,
        clock_from=time.time() - wall_before,
        on_report=TuneReporter(trainer, tracker, spec),
    )
