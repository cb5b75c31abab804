"""Tracking: the only package in adl that imports mlflow, and only once a run is opened
(``run.open_run`` imports ``mlflow_tracker``; ``models`` is imported where a model is logged).

Everything else logs through the small :class:`Tracker` interface, so components never see MLflow.

- ``tracker.py``: the :class:`Tracker` protocol and :class:`NullTracker` (runs without a store);
- ``run.py``: :func:`tracked_run`, the one way a run is opened or resumed and closed;
- ``mlflow_tracker.py``: :class:`MlflowTracker`, one MLflow run;
- ``metric_names.py``: how each family's metrics are grouped and named in MLflow;
- ``provenance.py``: who ran what, from which commit and Ray job (MLflow's source/user tags);
- ``lookups.py``: runs already in the store (resume, trial runs, early-stopped runs);
- ``uri.py``: which store, whether it is there, how to open the UI (imported before anything heavy).

Tests keep what was logged with ``tests/fakes.MemoryTracker``.
"""

from pipelines.tracking.lookups import (
    close_running_children,
    close_stopped_runs,
    fail_trial_runs,
    find_trial_run,
    run_info,
)
from pipelines.tracking.run import open_run, tracked_run
from pipelines.tracking.tracker import NullTracker, Tracker

__all__ = [
    "NullTracker",
    "Tracker",
    "close_running_children",
    "close_stopped_runs",
    "fail_trial_runs",
    "find_trial_run",
    "open_run",
    "run_info",
    "tracked_run",
]
