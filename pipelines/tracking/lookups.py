"""Questions about runs already in the store: what a run is, which child run a Tune trial opened,
closing runs a scheduler stopped, fetching a run's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.tracking.uri import TrackingError, check_reachable, resolve_tracking_uri


def _client(tracking_uri: str) -> Any:
    """An ``MlflowClient``, for the questions below."""
    # MLflow (~2 s of import) loads on the first question: adl's command line imports this module
    # for `adl --help` and its refusals too
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def run_info(tracking_uri: str | None, run_id: str) -> tuple[str, str, dict[str, str]]:
    """(experiment name, status, tags) of an existing run; :class:`TrackingError` if there is none."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise TrackingError(f"no MLflow run {run_id!r} in {uri}") from None
    exp = client.get_experiment(run.info.experiment_id)
    return exp.name, run.info.status, dict(run.data.tags)


def find_trial_run(tracking_uri: str, parent_run_id: str, trial_id: str) -> str | None:
    """The child run of ``parent_run_id`` that a Tune trial opened before (a retried trial continues it)."""
    client = _client(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`adl.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def close_stopped_runs(tracking_uri: str, run_ids: list[str]) -> list[str]:
    """Close runs a scheduler stopped early (they never reach their own finish, or close KILLED when
    Tune stops them): FINISHED, tagged ``adl.early_stopped``. Returns the ones it closed."""
    client = _client(tracking_uri)
    closed = []
    for run_id in run_ids:
        if client.get_run(run_id).info.status in ("RUNNING", "KILLED"):
            client.set_tag(run_id, "adl.early_stopped", "true")
            client.set_terminated(run_id, "FINISHED")
            closed.append(run_id)
    return closed


def close_running_children(tracking_uri: str, parent_run_id: str, status: str = "KILLED") -> list[str]:
    """Close the child runs of ``parent_run_id`` still RUNNING (trials a stopped sweep left behind)
    with ``status``; returns their run names."""
    client = _client(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        client.set_terminated(run.info.run_id, status)
    return [str(r.info.run_name or r.info.run_id) for r in runs]


def download_artifacts(tracking_uri: str, run_id: str, artifact_path: str, dst: Path) -> bool:
    """Download ``artifact_path`` of a run into ``dst`` (as ``dst/<artifact_path>``); False if the
    run has no such artifacts."""
    client = _client(tracking_uri)
    if not client.list_artifacts(run_id, artifact_path):
        return False
    dst.mkdir(parents=True, exist_ok=True)
    client.download_artifacts(run_id, artifact_path, str(dst))
    return True


def fail_trial_runs(tracking_uri: str, parent_run_id: str, errors: dict[str, str]) -> list[str]:
    """The child runs of trials that ended in error (``errors``: Tune trial id -> error) closed
    FAILED with an ``adl.error`` tag, whatever status the trial left them in (a trial whose last
    checkpoint could not be stored had already closed its run FINISHED). Returns their run ids."""
    client = _client(tracking_uri)
    failed = []
    for trial_id, error in errors.items():
        run_id = find_trial_run(tracking_uri, parent_run_id, trial_id)
        if run_id is None:  # the trial errored before it opened its run
            continue
        run = client.get_run(run_id)
        if "adl.error" not in run.data.tags:
            client.set_tag(run_id, "adl.error", error[:500])
        if run.info.status != "FAILED":
            client.set_terminated(run_id, "FAILED")
        failed.append(run_id)
    return failed
