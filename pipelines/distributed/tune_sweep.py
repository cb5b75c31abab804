"""The Ray Tune half of ``adl sweep``: scheduler, search algorithm, the Tuner (new or restored), and
its results as plain data for the parent run."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterator
from typing import Any

import ray
from ray import tune
from ray.tune.experimental import output
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import ConcurrencyLimiter

from components.config import ConfigError
from pipelines.distributed.search_space import clamp_to_space, pbt_mutations, to_tune, trial_count
from pipelines.distributed.tune_callbacks import TRIAL_STATUSES, SignTuneState, StopOnSignal
from pipelines.distributed.tune_trial import TrialSpec, sweep_trial
from pipelines.sweep.signature import open_folder
from pipelines.sweep.verified_storage import verified_filesystem


def _scheduler(sweep: Any, metric: str, mode: str) -> Any:
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
        # Ray 2.60's PBT takes no seed: it draws its exploits and perturbations from Python's `random`.
        random.seed(sweep.seed)
        return PopulationBasedTraining(
            time_attr="training_iteration",  # perturbation_interval counts reports, not seconds
            metric=metric,
            mode=mode,
            perturbation_interval=s.perturbation_interval,
            synch=s.synch,
            hyperparam_mutations=pbt_mutations(sweep.search_space),
            custom_explore_fn=functools.partial(clamp_to_space, dict(sweep.search_space)),
        )
    return FIFOScheduler()


def _search_alg(sweep: Any, metric: str, mode: str) -> Any:
    if sweep.search == "random":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch  # optuna: optional, for `search: optuna` only
    except ImportError as e:
        raise ConfigError("search: optuna needs the optuna package (pip install optuna)") from e
    return ConcurrencyLimiter(
        OptunaSearch(metric=metric, mode=mode, seed=sweep.seed), max_concurrent=sweep.max_concurrent
    )


def check_trial_resources(cpu: float, gpu: float) -> None:
    """Refuse trials the cluster can never place (Tune would wait for them forever), with the numbers."""
    have = ray.cluster_resources()
    for key, want, name in (("CPU", cpu, "cpu"), ("GPU", gpu, "gpu")):
        if want > float(have.get(key, 0.0)):
            raise ConfigError(
                f"resources.{name}: each trial asks for {want:g} {key}, but the Ray cluster has "
                f"{float(have.get(key, 0.0)):g}; allowed: resources.{name} <= {float(have.get(key, 0.0)):g} "
                f"(or a cluster with more{' GPUs' if key == 'GPU' else ''})"
            )


def make_tuner(
    sweep: Any,
    spec: TrialSpec,
    metric: str,
    mode: str,
    storage: str,
    tune_path: str,
    verified: dict[str, bytes] | None = None,
) -> Any:
    """A Tuner over ``sweep``'s search space whose trials run :func:`sweep_trial` with ``spec``;
    with ``verified`` (a resume), the interrupted one at ``tune_path``, errored trials retried (its
    callbacks, which sign its state and hand it a stop request, come back with it from ``tuner.pkl``),
    Tune reading the state files exactly as adl checked them (``pipelines/sweep/verified_storage.py``)."""
    resources = {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu, **sweep.resources.custom}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, spec=spec), resources)
    if verified is not None:
        fs, root = open_folder(tune_path)
        pinned = verified_filesystem(fs, root, verified)
        return tune.Tuner.restore(root, trainable, resume_errored=True, storage_filesystem=pinned)
    # Random search under a scheduler lets the scheduler hold the metric (Tune refuses it twice).
    searched = not (sweep.search == "random" and sweep.scheduler.kind != "fifo")
    return tune.Tuner(
        trainable,
        param_space=to_tune(sweep.search_space),
        tune_config=tune.TuneConfig(
            metric=metric if searched else None,
            mode=mode if searched else None,
            scheduler=_scheduler(sweep, metric, mode),
            search_alg=_search_alg(sweep, metric, mode),
            num_samples=sweep.num_samples,
            max_concurrent_trials=sweep.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=str(sweep.name),
            storage_path=storage,
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            callbacks=[SignTuneState(), StopOnSignal()],
        ),
    )


def unfinished_trials(sweep: Any) -> tuple[list[str], list[str], int]:
    """After a stopped ``fit``: the names (with their searched values) and ids of the trials Tune left
    pending or running, and how many the search had not made yet."""
    left = [
        (f"{name} ({', '.join(f'{k}={v}' for k, v in config.items())})", trial_id)
        for name, (trial_id, status, config) in sorted(TRIAL_STATUSES.items())
        if status not in ("TERMINATED", "ERROR")
    ]
    planned = trial_count(sweep.search_space, sweep.num_samples)
    return [n for n, _ in left], [i for _, i in left], max(0, planned - len(TRIAL_STATUSES))


def errored_trials(results: Any) -> dict[str, str]:
    """Trial id -> the last line of its error, for every trial that ended in error (Tune's retries
    spent): from the results of trials that reported, and from Tune's trial statuses for those that
    errored before their first report."""
    errors: dict[str, str] = {}
    for r in results:
        if r.error is not None and (trial_id := (r.metrics or {}).get("trial_id")):
            lines = [x for x in str(r.error).strip().splitlines() if x.strip()]
            errors[str(trial_id)] = (lines[-1] if lines else type(r.error).__name__)[:500]
    for trial_id, status, _ in TRIAL_STATUSES.values():
        if status == "ERROR":
            errors.setdefault(trial_id, "the trial errored before its first report (see the job's log)")
    return errors


def trial_rows(results: Any, metric: str) -> list[dict[str, Any]]:
    """Every trial that reported ``metric`` and did not end in error: its config, last metrics,
    history and MLflow run id. (An errored trial's last report is not its result: it may be the
    report whose checkpoint could not be stored.)"""
    trials = []
    for r in results:
        if r.error is not None or r.metrics is None or metric not in r.metrics:
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
    return trials


@contextlib.contextmanager
def tune_ranks_like_adl(
    metric: str, rank: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> Iterator[None]:
    """While the sweep runs, Tune's "Current best trial" line ranks the trials by ``rank`` (adl's
    :func:`pipelines.sweep.run.best_trial`, given ``{"metrics", "trial"}`` rows), so that it and adl's
    closing "best trial" line name the same trial.

    Tune (2.60, ``ray.tune.experimental.output._current_best_trial``) ranks by the metric alone and
    gives a tie to the first trial; adl breaks ties by ``metric_tiebreak`` and never picks a trial that
    errored. Tune looks the function up at each progress report, so it is swapped for the sweep's
    ``fit`` and put back after it.
    """
    tune_rank = output._current_best_trial

    def current_best(trials: list[Any], tune_metric: str | None, tune_mode: str | None) -> tuple[Any, Any]:
        scored = [
            {"metrics": t.last_result, "trial": t}
            for t in trials
            if t.status != "ERROR" and isinstance(t.last_result.get(metric), int | float)
        ]
        if not tune_metric or not scored:  # Tune has no line to print (no metric), or no result yet
            return tune_rank(trials, tune_metric, tune_mode)
        return rank(scored)["trial"], metric

    output._current_best_trial = current_best
    try:
        yield
    finally:
        output._current_best_trial = tune_rank
