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
from typing import Any

import yaml

from components.config import ConfigError, apply_overrides, apply_values, build, read_yaml
from pipelines.families import get_family
from pipelines.sweep_config import SweepConfig

SWEEP_STATE = "adl_sweep.json"


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
    base_cfg = build(family.config_cls, base)  # the base config itself is valid
    if family.check is not None:
        family.check(base_cfg)  # e.g. the env is made once with its kwargs
    for key, values in all_values(sweep.search_space).items():
        for v in values:
            try:
                cfg = build(family.config_cls, apply_values(base, {key: v}))
                if family.check is not None:
                    family.check(cfg)
            except ConfigError as e:
                raise ConfigError(f"search_space.{key} = {v!r}: {e}") from None
    return sweep, base


@dataclass
class SweepPlan:
    """Everything a sweep run is built from, resolved and validated before Ray starts."""

    sweep: SweepConfig
    base: dict[str, Any]  # the family config as plain data, sweep overrides applied
    sweep_path: Path
    overrides: list[str]
    metric: str
    mode: str
    uri: str
    experiment: str
    exp_dir: Path  # where adl_sweep.json lives
    storage: str  # Tune's storage_path (a folder or a URI)
    tune_path: str  # the Tune experiment inside it
    driver_cwd: Path
    in_job: bool  # under `adl submit`: the working dir is a temporary copy
    parent_run_id: str | None = None  # set when resuming


def plan_sweep(
    sweep_path: str | Path | None,
    overrides: list[str],
    tracking_uri: str | None,
    experiment: str | None,
    resume: str | None,
) -> SweepPlan:
    from pipelines.tracking_uri import check_reachable, resolve_tracking_uri

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
        sweep_path, overrides = state["sweep_file"], state["overrides"]
    assert sweep_path is not None
    # Absolute now, and the cwd taken now: under `adl submit` the job's working dir is unpacked
    # again when the driver's ray.init joins the cluster, and relative paths to the old directory
    # fail afterwards (seen as FileNotFoundError on the sweep file).
    path = Path(sweep_path).resolve()
    sweep, base = load_sweep(path, list(overrides))
    family = get_family(sweep.family)
    # A URI (s3://, gs://, file://...) goes to Tune as it is; the small adl state file stays local.
    remote = bool(sweep.storage_path and "://" in sweep.storage_path)
    storage = Path(sweep.storage_path).resolve() if sweep.storage_path and not remote else storage_root
    storage_str = str(sweep.storage_path).rstrip("/") if remote else str(storage)
    uri = resolve_tracking_uri(state.get("tracking_uri") or tracking_uri)
    check_reachable(uri)
    exp_dir = (storage_root if remote else storage) / str(sweep.name)
    if resume is None and (exp_dir / SWEEP_STATE).exists():
        raise ConfigError(
            f"sweep {sweep.name!r} already exists at {exp_dir}; resume it with "
            f"`adl sweep --resume {sweep.name}` or set name: to something new"
        )
    return SweepPlan(
        sweep=sweep,
        base=base,
        sweep_path=path,
        overrides=list(overrides),
        metric=sweep.metric or family.metric,
        mode=sweep.mode or family.mode,
        uri=uri,
        experiment=state.get("experiment") or experiment or f"adl-{sweep.family}",
        exp_dir=exp_dir,
        storage=storage_str,
        tune_path=state.get("tune_path") or f"{storage_str}/{sweep.name}",
        driver_cwd=Path.cwd(),
        in_job=in_job,
        parent_run_id=state.get("parent_run_id"),
    )


def run_sweep(
    sweep_path: str | Path | None,
    overrides: list[str],
    tracking_uri: str | None,
    experiment: str | None,
    resume: str | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
) -> int:
    from pipelines.distributed.ray_runtime import init_ray
    from pipelines.distributed.tune_sweep import make_tuner, trial_rows
    from pipelines.distributed.tune_trial import TrialSpec
    from pipelines.tracking import tracked_run
    from pipelines.tracking_uri import ui_command

    plan = plan_sweep(sweep_path, overrides, tracking_uri, experiment, resume)
    sweep, uri = plan.sweep, plan.uri
    init_ray(address=address, num_cpus=num_cpus)
    if plan.in_job:  # everything relative is resolved by now (seen: FileNotFoundError from os.getcwd in Tune)
        Path(plan.storage).mkdir(parents=True, exist_ok=True)
        os.chdir(plan.storage)
    text = plan.sweep_path.read_text()
    t0 = time.time()
    with tracked_run(
        uri,
        plan.experiment,
        config={"sweep": dict(yaml.safe_load(text))} if resume is None else None,
        config_file="sweep.yaml",
        config_text=text,
        run_name=f"sweep-{sweep.name}",
        run_id=plan.parent_run_id,
        tags={"adl.family": sweep.family, "adl.sweep": str(sweep.name), "adl.kind": "sweep"},
    ) as parent:
        if resume is None:
            _write_state(plan, str(parent.run_id))
        print(f"adl: sweep {sweep.name!r}: parent MLflow run {parent.run_id} ({uri})", file=sys.stderr)
        spec = TrialSpec(
            family=sweep.family,
            base_config=plan.base,
            tracking_uri=uri,
            experiment=plan.experiment,
            parent_run_id=str(parent.run_id),
            sweep_name=str(sweep.name),
            driver_cwd=str(plan.driver_cwd),
            artifacts_every=sweep.artifacts_every,
        )
        tuner = make_tuner(
            sweep, spec, plan.metric, plan.mode, plan.storage, plan.tune_path, resume is not None
        )
        results = tuner.fit()
        _finish_parent(parent, get_family(sweep.family), trial_rows(results, plan.metric), plan)
        if results.num_errors:
            parent.finish("FAILED")
    print(f"adl: sweep {sweep.name!r} done in {time.time() - t0:.0f}s, {results.num_errors} errored trial(s)")
    print(f"adl: parent run {parent.run_id}; look at it with: {ui_command(uri)}")
    return 0 if results.num_errors == 0 else 1


def _write_state(plan: SweepPlan, parent_run_id: str) -> None:
    """What ``adl sweep --resume NAME`` needs to pick the sweep up again."""
    plan.exp_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "sweep_file": str(plan.sweep_path),
        "overrides": plan.overrides,
        "tracking_uri": plan.uri,
        "experiment": plan.experiment,
        "tune_path": plan.tune_path,
        "parent_run_id": parent_run_id,
    }
    (plan.exp_dir / SWEEP_STATE).write_text(json.dumps(state))


def _finish_parent(parent: Any, family: Any, trials: list[dict[str, Any]], plan: SweepPlan) -> None:
    """Best config, best run id, a scatter of the sweep, the family's own summary; close stopped runs."""
    from pipelines.sweep_plots import plot_sweep
    from pipelines.tracking import close_stopped_runs

    metric, mode = plan.metric, plan.mode
    # ASHA-stopped trials never reach their own finish(): close them here.
    close_stopped_runs(plan.uri, [t["run_id"] for t in trials if t["run_id"]])
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
