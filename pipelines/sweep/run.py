"""Composition root for ``adl sweep``: a Ray Tune run of one family, one parent MLflow run.

The sweep YAML names a family, its base config and a search space over dotted config keys.
Every key and every listed value is validated against the family's config before Ray starts.
Each trial is a child MLflow run (``pipelines/distributed/tune_trial.py``); the parent ends with
the best config, the best trial's run id, a scatter of the metric against each swept value and
whatever the family summarises (``Family.summarize_sweep``). The plan, and the signed state a
``--resume`` trusts, are ``pipelines/sweep/plan.py``.

SIGINT or SIGTERM stops the sweep the way Tune stops gracefully: running trials are stopped, the
state is saved (and signed) with them unfinished; the parent run and the unfinished trials' runs
are closed KILLED, they are named, the resume command is printed, and the exit code is 130 or 143.
A second signal stops at once.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from pipelines.families import get_family
from pipelines.stop_signals import StopSignals
from pipelines.sweep.plan import SweepPlan, plan_sweep, remove_state, write_state
from pipelines.sweep.signature import sign_folder
from pipelines.tracking import close_running_children, close_stopped_runs, fail_trial_runs, tracked_run
from pipelines.tracking.provenance import command_line
from pipelines.tracking.uri import where_to_look


def run_sweep(
    sweep_path: str | Path | None,
    overrides: list[str],
    tracking_uri: str | None,
    experiment: str | None,
    resume: str | None = None,
    num_cpus: int | None = None,
    address: str | None = None,
    trust_state: bool = False,
    yes: bool = False,
) -> int:
    # Ray and Tune (~1.5 s) load once the plan is checked: a refused sweep never loads them
    from pipelines.distributed.ray_runtime import init_ray
    from pipelines.distributed.tune_callbacks import sign_tune_state_of
    from pipelines.distributed.tune_sweep import check_trial_resources, errored_trials, make_tuner, trial_rows
    from pipelines.distributed.tune_trial import TrialSpec

    plan = plan_sweep(sweep_path, overrides, tracking_uri, experiment, resume, trust_state, yes)
    sweep, uri = plan.sweep, plan.uri
    init_ray(address=address, num_cpus=num_cpus)
    check_trial_resources(sweep.resources.cpu, sweep.resources.gpu)  # before any run or trial
    _check_storage(plan)
    if plan.in_job:  # everything relative is resolved by now (seen: FileNotFoundError from os.getcwd in Tune)
        here = Path(plan.storage) if "://" not in plan.storage else Path.home() / ".adl/sweeps"
        here.mkdir(parents=True, exist_ok=True)
        os.chdir(here)  # out of the job's working dir, which Ray may delete under the driver
    text = plan.sweep_text  # as it started (a resume: as signed in its state)
    t0 = time.time()
    stop = _stop_signals()  # from here a signal stops the sweep cleanly, also before fit starts
    with (
        stop,
        tracked_run(
            uri,
            plan.experiment,
            config={"sweep": dict(yaml.safe_load(text))} if resume is None else None,
            config_file="sweep.yaml",
            config_text=text,
            run_name=f"sweep-{sweep.name}",
            run_id=plan.parent_run_id,
            tags={"adl.family": sweep.family, "adl.sweep": str(sweep.name), "adl.kind": "sweep"},
        ) as parent,
    ):
        if resume is None:
            write_state(plan, str(parent.run_id))
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
            overhead=sweep.overhead,
            checkpoint_every_report=sweep.scheduler.kind == "pbt",
            gpu=sweep.resources.gpu,
            metric=plan.metric,
            command=command_line(),
        )
        verified = plan.verified if resume is not None else None
        tuner = make_tuner(sweep, spec, plan.metric, plan.mode, plan.storage, plan.tune_path, verified)
        if resume is None:
            sign_folder(plan.tune_path)  # tuner.pkl, as the Tuner has just written it
        sign_tune_state_of(plan.tune_path)  # and every state Tune saves from here on
        results = _fit(tuner, stop, plan)
        if stop.requested():
            return _stopped(parent, stop, plan)
        errors = errored_trials(results)
        rows = trial_rows(results, plan.metric)  # never an errored trial's
        fail_trial_runs(uri, str(parent.run_id), errors)
        _finish_parent(parent, get_family(sweep.family), rows, plan)
        if errors:
            parent.finish("FAILED")
        if errors and not rows:
            remove_state(plan)  # nothing to resume: the name is free for the next try
    _say_how_it_ended(plan, errors, len(rows), time.time() - t0)
    print(where_to_look(parent.run_id, plan.experiment, uri, parent.experiment_id, what="sweep's parent run"))
    return 0 if not errors else 1


def _check_storage(plan: SweepPlan) -> None:
    """Every node that may run a trial reads and writes the storage (a head's own folder fails them
    all, at their first checkpoint): refused now, with each node and the fix, otherwise."""
    from pipelines.distributed.storage_check import check_storage_reachable  # Ray: as in run_sweep

    sweep = plan.sweep
    need = {"CPU": sweep.resources.cpu, "GPU": sweep.resources.gpu, **sweep.resources.custom}
    what = (
        f"storage_path {plan.storage}"
        if sweep.storage_path
        else f"storage_path is not set, so the sweep's state goes to the driver's own disk ({plan.storage})"
    )
    if checked := check_storage_reachable(plan.storage, need, what):
        print(f"adl: storage {plan.storage}: read and written from {checked} node(s)", file=sys.stderr)


def _say_how_it_ended(plan: SweepPlan, errors: dict[str, str], with_results: int, took_s: float) -> None:
    name = plan.sweep.name
    if errors:
        first = next(iter(errors.values()))
        print(f"adl: sweep {name!r}: {len(errors)} trial(s) failed, their runs FAILED; first: {first}")
    if errors and not with_results:
        print(
            f"adl: sweep {name!r} failed in {took_s:.0f}s before any trial reported a result: no best "
            f"trial; its folder {plan.exp_dir} was removed, so the name can be used again"
        )
    else:
        print(
            f"adl: sweep {name!r} done in {took_s:.0f}s: {with_results} trial(s) with results, "
            f"{len(errors)} failed"
        )


def _stop_signals() -> StopSignals:
    """SIGINT/SIGTERM handlers (install after ray.init, which replaces the SIGTERM handler) whose first
    signal asks Tune for its graceful stop (``StopOnSignal`` hands the request on at Tune's next step)."""
    from pipelines.distributed.tune_callbacks import STOP_REQUESTED, TRIAL_STATUSES  # Ray: as in run_sweep

    STOP_REQUESTED.clear()
    TRIAL_STATUSES.clear()
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # adl's handler, not Tune's, owns SIGINT
    return StopSignals(STOP_REQUESTED.set, what="stopping the trials, saving the sweep's state")


def _fit(tuner: Any, stop: StopSignals, plan: SweepPlan) -> Any:
    """``tuner.fit()``; None when a second signal stopped it at once."""
    from pipelines.distributed.tune_sweep import tune_ranks_like_adl  # Ray: as in run_sweep

    sweep = plan.sweep
    try:
        rank = partial(
            best_trial,
            metric=plan.metric,
            mode=plan.mode,
            tiebreak=sweep.metric_tiebreak,
            tiebreak_mode=sweep.mode_tiebreak,
        )
        with tune_ranks_like_adl(plan.metric, rank):
            return tuner.fit()
    except KeyboardInterrupt:
        if not stop.requested():
            raise
        return None


def _stopped(parent: Any, stop: StopSignals, plan: SweepPlan) -> int:
    """A sweep stopped by a signal: unfinished trials named, their runs and the parent KILLED."""
    from pipelines.distributed.tune_sweep import unfinished_trials  # Ray: as in run_sweep

    names, _, not_started = unfinished_trials(plan.sweep)
    close_running_children(plan.uri, str(parent.run_id), "KILLED")  # a trial killed before its finally
    parent.finish("KILLED")
    sig = signal.Signals(stop.signum or signal.SIGINT).name
    later = f"; {not_started} not started yet" if not_started else ""
    print(
        f"adl: sweep {plan.sweep.name!r} stopped by {sig}: {len(names) + not_started} unfinished "
        f"trial(s): {'; '.join(names) or 'none running'}{later}. The parent MLflow run {parent.run_id} "
        f"and the stopped trials' runs are KILLED.\n"
        f"adl: continue with: adl sweep --resume {plan.exp_dir}",
        file=sys.stderr,
    )
    return stop.exit_code


def best_trial(
    trials: list[dict[str, Any]], metric: str, mode: str, tiebreak: str | None, tiebreak_mode: str
) -> dict[str, Any]:
    """The best trial by ``metric``; among trials tied on it, the best by ``tiebreak``."""

    def key(t: dict[str, Any]) -> tuple[float, float]:
        m = t["metrics"]
        first = m[metric] if mode == "max" else -m[metric]
        second = m.get(tiebreak, float("nan")) if tiebreak else 0.0
        second = second if tiebreak_mode == "max" else -second
        return first, (second if second == second else -float("inf"))  # NaN loses a tie

    return max(trials, key=key)


def _finish_parent(parent: Any, family: Any, trials: list[dict[str, Any]], plan: SweepPlan) -> None:
    """Best trial (tags, a linked description, its config), a table of every trial, a scatter of the
    sweep, the family's own summary; close runs a scheduler stopped."""
    from pipelines.sweep.plots import plot_sweep, write_results_table  # matplotlib: the summary only

    metric, sweep = plan.metric, plan.sweep
    # ASHA-stopped trials never reach their own finish(): close them here.
    close_stopped_runs(plan.uri, [t["run_id"] for t in trials if t["run_id"]])
    if not trials:
        return
    best = best_trial(trials, metric, plan.mode, sweep.metric_tiebreak, sweep.mode_tiebreak)
    value = best["metrics"][metric]
    link = f"#/experiments/{parent.experiment_id}/runs/{best['run_id']}?workflowType=machine_learning"
    tried = describe_trials(trials, list(sweep.search_space))
    ranked = f"ranked by `{metric}` ({plan.mode})" + (
        f", ties by `{sweep.metric_tiebreak}` ({sweep.mode_tiebreak})" if sweep.metric_tiebreak else ""
    )
    parent.set_tags(
        {
            "adl.best_run_id": str(best["run_id"]),
            f"adl.best_{metric}": str(value),
            "mlflow.note.content": (
                f"Sweep **{sweep.name}** of `{sweep.family}`: {tried}, {ranked}.\n\n"
                f"Best trial: [{best['run_id']}]({link}) with `{metric}` = {value:.4g} and "
                + ", ".join(f"`{k}` = {_short(v)}" for k, v in best["config"].items())
                + ".\n\nEvery trial's config and final metrics: `sweep_results.csv` / `.parquet`."
            ),
        }
    )
    parent.log_metrics({f"sweep/best_{metric}": float(value)}, step=0)
    parent.log_text(yaml.safe_dump(best["config"], sort_keys=False), "best_config.yaml")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        paths = [plot_sweep(trials, metric, out / "sweep_scatter.png"), *write_results_table(trials, out)]
        if family.summarize_sweep is not None:
            paths += list(family.summarize_sweep(trials, out))
        for p in paths:
            parent.log_artifact(p)
    tie = sweep.metric_tiebreak
    tied = (
        f", {tie}={best['metrics'][tie]:.4g}"
        if tie and isinstance(best["metrics"].get(tie), int | float)
        else ""
    )
    print(
        f"adl: best trial: {metric}={value:.4g}{tied} with {best['config']} ({ranked.replace('`', '')}; "
        f"Tune trial {best['metrics'].get('trial_id', '?')}, MLflow run {best['run_id']})"
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _order(value: Any, text: str) -> tuple[int, float, str]:
    """Numbers by value, then anything else by its text."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, text)


def describe_trials(trials: list[dict[str, Any]], keys: list[str]) -> str:
    """What the trials actually tried: the keys whose drawn values differ (with the values), and
    those every trial drew alike ("2 trials varying `alpha.start` (0.1, 0.5); `seed` = 0 in all")."""
    varied, alike = [], []
    for k in keys:
        values = {_short(t["config"][k]): t["config"][k] for t in trials if k in t["config"]}
        if len(values) > 1:
            shown = sorted(values, key=lambda v: _order(values[v], v))
            more = f", … {len(shown) - 6} more" if len(shown) > 6 else ""
            varied.append(f"`{k}` ({', '.join(shown[:6])}{more})")
        elif values:
            alike.append(f"`{k}` = {next(iter(values))}")
    n = f"{len(trials)} trial{'s' if len(trials) != 1 else ''}"
    if not varied:
        return f"{n}, all with the same values ({', '.join(alike)})" if alike else n
    same = f"; {', '.join(alike)} in all" if alike else ""
    return f"{n} varying {', '.join(varied)}{same}"
