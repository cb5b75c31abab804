"""One MLflow run as adl writes it: params, step-indexed metrics (batched), tags, artifacts, logged
models and system metrics.

:class:`MlflowTracker` talks to MLflow through ``MlflowClient`` with an explicit tracking URI rather
than the fluent API's process-global state: Tune trials run in threads and worker processes that
change directory, and each must write to the same store.

This module imports MLflow at its top; it is itself imported only when a run is opened
(``run.open_run``), so ``adl --help`` and a refused config never load MLflow.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from components.config import flatten
from components.data_card import DataCard
from pipelines.tracking.metric_sender import MetricSender
from pipelines.tracking.provenance import run_tags
from pipelines.tracking.uri import check_reachable

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
# MLflow's own experiment tag for what an experiment holds; adl's hold model training, not GenAI traces.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
NOTE = "mlflow.note.content"  # the run's description (Overview tab), Markdown
RESULT_HEADING = "**Result:**"


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
        started: float | None = None,
    ) -> None:
        """``started`` (seconds since the epoch) is the run's start time, when the work began
        before the run was opened (``adl train`` counts from the command's launch): the run's
        Duration then covers what its timings count."""
        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        check_reachable(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment_id(experiment)
        if run_id is not None:  # resume an existing run
            self.client.update_run(run_id, status="RUNNING")
            self.run_id: str | None = run_id
        else:
            all_tags = {**run_tags(), **(tags or {})}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            start_ms = int(started * 1000) if started is not None else None
            run = self.client.create_run(
                self.experiment_id, start_time=start_ms, run_name=run_name, tags=all_tags
            )
            self.run_id = run.info.run_id
        self._finished = self._warned = False
        self._system: Any = None
        self._sender: MetricSender | None = None

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created if needed, marked as a model-training experiment (MLflow's
        ``mlflow.experimentKind``) unless it already says what it is."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if not set(EXPERIMENT_KIND) & set(exp.tags):
                for k, v in EXPERIMENT_KIND.items():
                    self.client.set_experiment_tag(exp.experiment_id, k, v)
            return str(exp.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:///"):
            # Artifacts beside the database, as an absolute path: trials change directory.
            location = (Path(self.tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND))
        except Exception:  # created concurrently by another trial
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queued and sent from a thread (``metric_sender.py``): a tracking server that is away
        (restarting, cut off) costs the training loop nothing, and the metrics arrive when it is back."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if self._sender is None:
            self._sender = MetricSender(
                self._send_batch,
                on_error=self._warn_once,
                on_slow=self._warn_slow,
                coalesce=1000,  # one call a second at most, however often the loop logs
                min_interval_s=1.0,
            )
        for i in range(0, len(batch), 1000):
            self._sender.put(batch[i : i + 1000])

    def _send_batch(self, batch: Any) -> None:
        self.client.log_batch(self.run_id, metrics=list(batch))

    def _warn_once(self, e: Exception) -> None:
        self._warn(f"did not take metrics ({type(e).__name__})")

    def _warn_slow(self, waited_s: float, pending: int) -> None:
        self._warn(f"has not answered for {waited_s:.0f}s ({pending} metric values wait)")

    def _warn(self, what: str) -> None:
        if not self._warned:  # once a run: an outage is one event, not one per batch
            self._warned = True
            print(
                f"adl: warning: the tracking server {self.tracking_uri} {what}; training goes on, and "
                f"the metrics are sent, in order, once it takes them",
                file=sys.stderr,
                flush=True,
            )

    def flush(self, timeout_s: float = 300.0) -> bool:
        """Wait until every metric logged so far is on the server (False if ``timeout_s`` passed)."""
        return self._sender is None or self._sender.flush(timeout_s)

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

    def note_result(self, text: str) -> None:
        """Say the run's result in its description, after what the description said at the start;
        a resumed run's result replaces the one before."""
        assert self.run_id is not None
        note = self.client.get_run(self.run_id).data.tags.get(NOTE, "").split(RESULT_HEADING)[0].rstrip()
        self.client.set_tag(self.run_id, NOTE, f"{note}\n\n{RESULT_HEADING} {text}".lstrip())

    def log_datasets(self, cards: Sequence[DataCard]) -> None:
        """The run's inputs, as MLflow datasets (the runs table's Datasets column), each tagged with
        its context (``training``, ``validation``)."""
        inputs = []
        for c in cards:
            schema = Schema([TensorSpec(np.dtype(c.dtype), tuple(c.shape()))]).to_json()
            profile = {"features_shape": c.shape(), "features_size": c.rows, "source": c.source}
            dataset = Dataset(
                name=c.name,
                digest=c.digest,
                source_type="local" if c.local else "code",
                source=json.dumps({"uri": c.source} if c.local else {"tags": {"adl.source": c.source}}),
                schema=json.dumps({"mlflow_tensorspec": {"features": schema, "targets": None}}),
                profile=json.dumps(profile),
            )
            inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", c.context)]))
        if inputs:
            self.client.log_inputs(self.run_id, datasets=inputs)

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def start_system_metrics(self, every_s: float = 5.0) -> None:
        """MLflow's system metrics (CPU, memory, disk, network; GPU where NVML sees one) every
        ``every_s`` seconds, as ``system/*`` in this run, until :meth:`finish`."""
        self._system = SystemMetricsMonitor(
            self.run_id, sampling_interval=every_s, resume_logging=True, tracking_uri=self.tracking_uri
        )
        self._system.start()

    def finish(self, status: str = "FINISHED") -> None:
        if self._finished:
            return
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if self._system is not None:
            self._system.finish()
        if self._sender is not None:  # every metric on the server before the run is closed
            self._sender.close(timeout_s=float(os.environ.get("ADL_METRICS_FLUSH_S", "300")))
            if self._sender.lost:
                self.client.set_tag(self.run_id, "adl.metrics_lost", str(self._sender.lost))
        self.client.set_terminated(self.run_id, status=status)
        self._finished = True
