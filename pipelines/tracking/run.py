"""Opening a run: :func:`tracked_run` is the one way a run is opened (or resumed), has its config
logged and is closed with the status of what happened. ``adl train``, the DQN pipeline, sweeps and
their trials all use it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from components.config import dump_yaml, to_dict
from pipelines.tracking.metric_names import MetricNames, NamedTracker
from pipelines.tracking.uri import resolve_tracking_uri

if TYPE_CHECKING:
    from pipelines.tracking.mlflow_tracker import MlflowTracker


def open_run(
    tracking_uri: str | None,
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
    started: float | None = None,
) -> MlflowTracker:
    """An :class:`MlflowTracker` on the resolved URI; raises :class:`TrackingError` fast."""
    # MLflow (~2 s of import) loads with the first run opened: adl's command line imports this
    # module for `adl --help` and for refusals too, which never open one.
    from pipelines.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(
        resolve_tracking_uri(tracking_uri), experiment, run_name, tags, parent_run_id, run_id, started
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
    names: MetricNames | None = None,
    lead_metric: str | None = None,
    description: str | None = None,
    system_metrics: bool = True,
    started: float | None = None,
) -> Iterator[Any]:
    """Open a run (or resume ``run_id``), log its config, and close it with what happened.

    ``config`` (a config dataclass, or a plain mapping with its ``config_text``) is logged as
    flattened params and as ``config_file`` (its YAML); a resumed run logs only the file (the
    params are the run's already). ``params`` are logged beside it. With ``names`` the block gets a
    :class:`~pipelines.tracking.metric_names.NamedTracker` (grouped names, one-offs logged once
    at the end), ``lead_metric`` first, and the run's description says what its step axis counts;
    ``description`` adds to it. ``system_metrics`` samples CPU, memory and GPU (``system/*``) while
    the run is open. ``started`` (epoch seconds) is the new run's start time when the work began
    earlier (the command's launch), so that its Duration covers the times it reports.

    The run ends FINISHED when the block completes, KILLED on ``KeyboardInterrupt`` and FAILED on
    any other exception; a block may end it earlier with ``tracker.finish(status)``, which the exit
    then leaves as it is.
    """
    tracker = open_run(tracking_uri, experiment, run_name, tags, parent_run_id, run_id, started)
    if config is not None:
        plain = to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
        if run_id is None:
            tracker.log_params(plain)
        tracker.log_text(config_text if config_text is not None else dump_yaml(config), config_file)
    if params:
        tracker.log_params(params)
    note = [description] if description else []
    if names is not None:
        note.append(f"Metrics are logged against **{names.step}** (the charts' step axis).")
    if note and run_id is None:
        tracker.set_tags({"mlflow.note.content": "\n\n".join(note)})
    if system_metrics:
        tracker.start_system_metrics()
    handle: Any = NamedTracker(tracker, names, lead_metric) if names is not None else tracker
    status = "FAILED"
    try:
        yield handle
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        handle.finish(status)
