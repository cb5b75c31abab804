"""The tracker: the only module in adl that imports mlflow.

Everything else logs through the small :class:`Tracker` interface, so components never see MLflow
and unit tests use :class:`NullTracker` (or :class:`MemoryTracker`, which keeps what was logged).
:class:`MlflowTracker` talks to MLflow through ``MlflowClient`` with an explicit tracking URI
rather than the fluent API's process-global state: Tune trials run in threads and worker
processes that change directory, and each must write to the same store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from components.config import flatten

ADL_VERSION = "0.1.0"
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


class TrackingError(RuntimeError):
    """The tracking store cannot be used (unreachable server, bad URI)."""


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Logs nothing. For unit tests and for code paths that run without a store."""

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


class MemoryTracker(NullTracker):
    """Keeps everything in memory, for tests that check what a pipeline logs."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.artifacts: list[str] = []
        self.texts: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.status: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(flatten(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step, float(v)))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts.append(f"{artifact_path}/{name}" if artifact_path else name)

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text
        self.artifacts.append(name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def finish(self, status: str = "FINISHED") -> None:
        self.status = status


# ---------------------------------------------------------------------------------------------
# Tracking URIs


def resolve_tracking_uri(uri: str | None = None, base_dir: str | Path | None = None) -> str:
    """The URI to use: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    Relative sqlite and file paths are made absolute: Tune trials change directory, and a relative
    store would silently split a sweep across folders.
    """
    base = Path(base_dir or os.getcwd()).resolve()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if not path.startswith("/"):
            uri = f"sqlite:///{(base / path).resolve()}"
    elif uri.startswith("file:") or "://" not in uri:
        path = uri[len("file:") :] if uri.startswith("file:") else uri
        path = path.lstrip("/") if path.startswith("///") else path
        uri = Path(path if Path(path).is_absolute() else base / path).resolve().as_uri()
    return uri


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when a tracking server is not there."""
    if not uri.startswith(("http://", "https://")):
        if uri.startswith("sqlite:///"):
            parent = Path(uri[len("sqlite:///") :]).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrackingError(f"tracking URI {uri}: cannot create folder {parent} ({e})") from None
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # something answered over HTTP: the server is there
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({reason}). Start one with "
            f"`mlflow server --host 127.0.0.1 --port 5000`, or drop --tracking-uri / "
            f"MLFLOW_TRACKING_URI to use the local store sqlite:///$PWD/mlflow.db"
        ) from None


def ui_command(uri: str) -> str:
    """The one command that opens the MLflow UI on this store, bound to 127.0.0.1."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    return f"{mlflow_bin} ui --host 127.0.0.1 --port 5000 --backend-store-uri {uri}"


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

    @property
    def run_url_hint(self) -> str:
        return f"experiment {self.experiment_id}, run {self.run_id}"

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
