"""Composition root for ``adl sweep``: a Ray Tune run of one family, one parent MLflow run.

The sweep YAML names a family, its base config and a search space over dotted config keys.
Every key and every listed value is validated against the family's config before Ray starts.
Each trial is a child MLflow run (``pipelines/distributed/tune_trial.py``); the parent ends with
the best config, the best trial's run id, a scatter of the metric against each swept value and
whatever the family summarises (``Family.summarize_sweep``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from components.config import ConfigError, apply_overrides, apply_values, build, param, read_yaml, section
from pipelines.families import FAMILIES, get_family

SWEEP_STATE = "adl_sweep.json"


@dataclass
class SchedulerConfig:
    """Which Tune scheduler stops or exploits trials."""

    kind: Literal["asha", "pbt", "fifo"] = param("asha", "ASHA early stopping, PBT exploit/explore, or none")
    grace_period: int = param(1, "ASHA: reports a trial gets before it may be stopped", ge=1)
    reduction_factor: float = param(2.0, "ASHA: keep 1/reduction_factor of trials at each rung", gt=1.0)
    perturbation_interval: int = param(2, "PBT: reports between exploit/explore steps", ge=1)


@dataclass
class ResourcesConfig:
    """Resources one trial asks Ray for."""

    cpu: float = param(1.0, "CPUs per trial", ge=0.0)
    gpu: float = param(0.0, "GPUs per trial; fractions share a GPU between trials", ge=0.0)
    custom: dict[str, float] = param(
        factory=dict, doc="custom Ray resources per trial, e.g. {worker_node: 1}"
    )


@dataclass
class SweepConfig:
    """A Tune sweep over one family's config."""

    family: str = param(doc="which family's trainer every trial runs")
    base_config: str = param(doc="the family YAML every trial starts from (path)")
    overrides: dict[str, Any] = param(factory=dict, doc="fixed dotted-key values applied to the base config")
    search_space: dict[str, Any] = param(
        factory=dict, doc="dotted key → {choice|grid|uniform|loguniform|randint}"
    )
    name: str | None = param(None, "sweep name (default: the sweep file's name); folder under storage_path")
    num_samples: int = param(1, "samples of the space (each grid point is repeated this often)", ge=1)
    metric: str | None = param(None, "metric to optimise (default: the family's)")
    mode: Literal["min", "max"] | None = param(None, "min or max (default: the family's)")
    scheduler: SchedulerConfig = section(SchedulerConfig)
    search: Literal["random", "optuna"] = param("random", "search algorithm: random/grid or Optuna TPE")
    max_concurrent: int = param(2, "trials running at once", ge=1)
    resources: ResourcesConfig = section(ResourcesConfig)
    max_failures: int = param(1, "retries of a failed trial from its last checkpoint", ge=0)
    storage_path: str | None = param(
        None, "where Tune keeps trial state: a folder or any URI Tune accepts (default: ./.adl/sweeps)"
    )
    artifacts_every: int = param(1, "log the trainer's pictures every this many reports", ge=1)
    seed: int = param(0, "seed of the search algorithm")

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family: unknown family {self.family!r}; known: {', '.join(FAMILIES)}")


def _dotted_set(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


def load_sweep(path: str | Path, overrides: list[str] = ()) -> tuple[SweepConfig, dict[str, Any]]:
    """The sweep config and its family's base config as plain data, both validated."""
    from pipelines.distributed.search_space import all_values

    path = Path(path)
    sweep = build(SweepConfig, apply_overrides(read_yaml(path), overrides))
    if sweep.name is None:
        sweep.name = path.stem
    family = get_family(sweep.family)
    base_path = Path(sweep.base_config)
    if not base_path.is_file() and (path.parent.parent.parent / base_path).is_file():
        base_path = path.parent.parent.parent / base_path  # relative to the repo, not the cwd
    base = apply_overrides(read_yaml(base_path), _dotted_set(sweep.overrides))
    build(family.config_cls, base)  # the base config itself is valid
    for key, values in all_values(sweep.search_space).items():
        for v in values:
            try:
                build(family.config_cls, apply_values(base, {key: v}))
            except ConfigError as e:
                raise ConfigError(f"search_space.{key} = {v!r}: {e}") from None
    return sweep, base


def _scheduler(sweep: SweepConfig, metric: str, mode: str) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    from pipelines.distributed.search_space import to_tune

    s = sweep.scheduler
    if s.kind == "asha":
        return ASHAScheduler(
            metric=metric,
            mode=mode,
            max_t=100_000,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    if s.kind == "pbt":
        mutations = {k: v for k, v in to_tune(sweep.search_space).items() if not isinstance(v, dict)}
        return PopulationBasedTraining(
            time_attr="training_iteration",  # perturbation_interval counts reports, not seconds
            metric=metric,
            mode=mode,
            perturbation_interval=s.perturbation_interval,
            hyperparam_mutations=mutations,
            seed=sweep.seed,
        )
    return FIFOScheduler()


def _search_alg(sweep: SweepConfig, metric: str, mode: str) -> Any:
    if sweep.search == "random":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as e:
        raise ConfigError("search: optuna needs the optuna package (pip install optuna)") from e
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(
        OptunaSearch(metric=metric, mode=mode, seed=sweep.seed), max_concurrent=sweep.max_concurrent
    )


def run_sweep(
    sweep_path: str | Path,
    overrides: list[str],
    tracking_uri: str | None,
    experiment: str | None,
    resume: str | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
) -> int:
    from ray import tune

    from pipelines.distributed.ray_runtime import init_ray
    from pipelines.distributed.search_space import to_tune
    from pipelines.distributed.tune_trial import TrialSpec, sweep_trial
    from pipelines.tracking import MlflowTracker, check_reachable, resolve_tracking_uri, ui_command

    # Inside a Ray job (adl submit) the working dir is a temporary copy that Ray may delete under the
    # driver once the job's trials end; sweep state and the driver's cwd must live elsewhere.
    in_job = bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))
    storage_root = Path.home() / ".adl/sweeps" if in_job else Path(".adl/sweeps").resolve()
    state: dict[str, Any] = {}
    if resume is not None:  # everything comes from the saved state, not from a possibly edited YAML
        exp_dir = Path(resume) if Path(resume).is_dir() else storage_root / resume
        state_file = exp_dir / SWEEP_STATE
        if not state_file.is_file():
            raise ConfigError(f"--resume {resume}: no sweep state at {state_file}")
        state = json.loads(state_file.read_text())
        sweep_path = state["sweep_file"]
        overrides = state["overrides"]
    # Absolute now, and the cwd taken now: under `adl submit` the job's working dir is unpacked
    # again when the driver's ray.init joins the cluster, and relative paths to the old directory
    # fail afterwards (seen as FileNotFoundError on the sweep file).
    sweep_path = Path(sweep_path).resolve()
    driver_cwd = Path.cwd()
    sweep, base = load_sweep(sweep_path, list(overrides))
    family = get_family(sweep.family)
    metric, mode = sweep.metric or family.metric, sweep.mode or family.mode
    # A URI (s3://, gs://, file://...) goes to Tune as it is; the small adl state file stays local.
    remote = bool(sweep.storage_path and "://" in sweep.storage_path)
    storage = Path(sweep.storage_path).resolve() if sweep.storage_path and not remote else storage_root
    storage_str = str(sweep.storage_path).rstrip("/") if remote else str(storage)
    uri = resolve_tracking_uri(state.get("tracking_uri") or tracking_uri)
    check_reachable(uri)
    experiment = state.get("experiment") or experiment or f"adl-{sweep.family}"
    exp_dir = (storage_root if remote else storage) / str(sweep.name)  # where adl_sweep.json lives
    tune_path = state.get("tune_path") or f"{storage_str}/{sweep.name}"
    if resume is None and (exp_dir / SWEEP_STATE).exists():
        raise ConfigError(
            f"sweep {sweep.name!r} already exists at {exp_dir}; resume it with "
            f"`adl sweep --resume {sweep.name}` or set name: to something new"
        )

    init_ray(address=address, num_cpus=num_cpus)
    if in_job:  # everything relative is resolved by now (seen: FileNotFoundError from os.getcwd in Tune)
        storage.mkdir(parents=True, exist_ok=True)
        os.chdir(storage)
    parent = MlflowTracker(
        uri,
        experiment,
        run_name=f"sweep-{sweep.name}",
        run_id=state.get("parent_run_id"),
        tags={"adl.family": sweep.family, "adl.sweep": str(sweep.name), "adl.kind": "sweep"},
    )
    if resume is None:
        parent.log_params({"sweep": {k: v for k, v in yaml.safe_load(Path(sweep_path).read_text()).items()}})
        parent.log_text(Path(sweep_path).read_text(), "sweep.yaml")
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / SWEEP_STATE).write_text(
            json.dumps(
                {
                    "sweep_file": str(Path(sweep_path).resolve()),
                    "overrides": list(overrides),
                    "tracking_uri": uri,
                    "experiment": experiment,
                    "tune_path": tune_path,
                    "parent_run_id": parent.run_id,
                }
            )
        )
    print(f"adl: sweep {sweep.name!r}: parent MLflow run {parent.run_id} ({uri})", file=sys.stderr)

    spec = TrialSpec(
        family=sweep.family,
        base_config=base,
        tracking_uri=uri,
        experiment=experiment,
        parent_run_id=str(parent.run_id),
        sweep_name=str(sweep.name),
        driver_cwd=str(driver_cwd),
        artifacts_every=sweep.artifacts_every,
    )
    resources = {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu, **sweep.resources.custom}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, spec=spec), resources)
    t0 = time.time()
    status = "FAILED"
    try:
        if resume is not None:
            tuner = tune.Tuner.restore(tune_path, trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=to_tune(sweep.search_space),
                tune_config=tune.TuneConfig(
                    metric=None if sweep.search == "random" and sweep.scheduler.kind != "fifo" else metric,
                    mode=None if sweep.search == "random" and sweep.scheduler.kind != "fifo" else mode,
                    scheduler=_scheduler(sweep, metric, mode),
                    search_alg=_search_alg(sweep, metric, mode),
                    num_samples=sweep.num_samples,
                    max_concurrent_trials=sweep.max_concurrent,
                ),
                run_config=tune.RunConfig(
                    name=str(sweep.name),
                    storage_path=storage_str,
                    verbose=1,
                    failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                ),
            )
        results = tuner.fit()
        status = "FINISHED" if results.num_errors == 0 else "FAILED"
        _finish_parent(parent, family, results, metric, mode, uri)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        parent.finish(status)
    print(f"adl: sweep {sweep.name!r} done in {time.time() - t0:.0f}s, {results.num_errors} errored trial(s)")
    print(f"adl: parent run {parent.run_id}; look at it with: {ui_command(uri)}")
    return 0 if results.num_errors == 0 else 1


def _finish_parent(parent: Any, family: Any, results: Any, metric: str, mode: str, uri: str) -> None:
    """Best config, best run id, a scatter of the sweep, the family's own summary; close stopped runs."""
    from mlflow.tracking import MlflowClient

    from pipelines.sweep_plots import plot_sweep

    trials = []
    for r in results:
        if r.metrics is None or metric not in r.metrics:
            continue
        history = r.metrics_dataframe.to_dict("records") if r.metrics_dataframe is not None else []
        trials.append(
            {
                "config": dict(r.config),
                "metrics": dict(r.metrics),
                "history": history,
                "run_id": r.metrics.get("mlflow_run_id"),
            }
        )
    client = MlflowClient(uri)
    for t in trials:  # ASHA-stopped trials never reach their own finish(): close them here
        if t["run_id"] and client.get_run(t["run_id"]).info.status == "RUNNING":
            client.set_tag(t["run_id"], "adl.early_stopped", "true")
            client.set_terminated(t["run_id"], "FINISHED")
    if not trials:
        return
    best_fn = min if mode == "min" else max
    best = best_fn(trials, key=lambda t: t["metrics"][metric])
    parent.set_tags(
        {"adl.best_run_id": str(best["run_id"]), f"adl.best_{metric}": str(best["metrics"][metric])}
    )
    parent.log_metrics({f"best_{metric}": float(best["metrics"][metric])}, step=0)
    parent.log_text(yaml.safe_dump(best["config"], sort_keys=False), "best_config.yaml")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        paths = [plot_sweep(trials, metric, out / "sweep_scatter.png")]
        if family.summarize_sweep is not None:
            paths += list(family.summarize_sweep(trials, out))
        for p in paths:
            parent.log_artifact(p)
    print(
        f"adl: best trial: {metric}={best['metrics'][metric]:.4g} with {best['config']} "
        f"(MLflow run {best['run_id']})"
    )
