"""The tracker: the only module in adl that imports mlflow.

Everything else logs through the small :class:`Tracker` interface, so components never see MLflow.
:func:`tracked_run` is the one way a run is opened (or resumed), has its config logged and is
closed with the status of what happened: ``adl train``, the DQN pipeline, sweeps and their trials all
use it. :class:`MlflowTracker` talks to MLflow through ``MlflowClient`` with an explicit tracking URI
rather than the fluent API's process-global state: Tune trials run in threads and worker processes
that change directory, and each must write to the same store. :class:`NullTracker` logs nothing, for
runs without a store (benchmarks, a GPU machine without MLflow); tests keep what was logged with
``tests/fakes.MemoryTracker``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from components.config import dump_yaml, flatten, to_dict
from pipelines.tracking_uri import TrackingError, check_reachable, resolve_tracking_uri

ADL_VERSION = "0.1.0"
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Logs nothing: for runs without a store (benchmarks, a GPU machine without MLflow)."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass


def git_commit(repo: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# MLflow


class MlflowTracker:
    """One MLflow run: params, step-indexed metrics (batched), tags, artifacts."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        check_reachable(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment_id(experiment)
        if run_id is not None:  # resume an existing run
            self.client.update_run(run_id, status="RUNNING")
            self.run_id: str | None = run_id
        else:
            all_tags = {"adl.version": ADL_VERSION, **(tags or {})}
            if commit := git_commit():
                all_tags["mlflow.source.git.commit"] = commit
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
        self._finished = False

    def _experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:///"):
            # Artifacts beside the database, as an absolute path: trials change directory.
            location = (Path(self.tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:  # created concurrently by another trial
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / Path(name).name
            p.write_text(text)
            parent = str(Path(name).parent)
            self.log_artifact(p, None if parent == "." else parent)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def finish(self, status: str = "FINISHED") -> None:
        if self._finished:
            return
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        self.client.set_terminated(self.run_id, status=status)
        self._finished = True


def run_info(tracking_uri: str | None, run_id: str) -> tuple[str, str, dict[str, str]]:
    """(experiment name, status, tags) of an existing run; :class:`TrackingError` if there is none."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise TrackingError(f"no MLflow run {run_id!r} in {uri}") from None
    exp = client.get_experiment(run.info.experiment_id)
    return exp.name, run.info.status, dict(run.data.tags)


def open_run(
    tracking_uri: str | None,
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
) -> MlflowTracker:
    """An :class:`MlflowTracker` on the resolved URI; raises :class:`TrackingError` fast."""
    return MlflowTracker(
        resolve_tracking_uri(tracking_uri), experiment, run_name, tags, parent_run_id, run_id
    )


@contextmanager
def tracked_run(
    tracking_uri: str | None,
    experiment: str,
    *,
    config: Any = None,
    config_file: str = "config.yaml",
    config_text: str | None = None,
    params: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
) -> Iterator[MlflowTracker]:
    """Open a run (or resume ``run_id``), log its config, and close it with what happened.

    ``config`` (a config dataclass, or a plain mapping with its ``config_text``) is logged as
    flattened params and as ``config_file`` (its YAML); a resumed run logs only the file (the
    params are the run's already). ``params`` are logged beside it. The run ends FINISHED when the
    block completes, KILLED on ``KeyboardInterrupt`` and FAILED on any other exception; a block may
    end it earlier with ``tracker.finish(status)``, which the exit then leaves as it is.
    """
    tracker = open_run(tracking_uri, experiment, run_name, tags, parent_run_id, run_id)
    if config is not None:
        plain = to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
        if run_id is None:
            tracker.log_params(plain)
        tracker.log_text(config_text if config_text is not None else dump_yaml(config), config_file)
    if params:
        tracker.log_params(params)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish(status)


def find_trial_run(tracking_uri: str, parent_run_id: str, trial_id: str) -> str | None:
    """The child run of ``parent_run_id`` that a Tune trial opened before (a retried trial continues it)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
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
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
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
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        client.set_terminated(run.info.run_id, status)
    return [str(r.info.run_name or r.info.run_id) for r in runs]
