"""Networks as MLflow models: a signature and an input example, saved with ``torch.export`` (the
"pt2" format, which loads without unpickling code), optionally registered under a name."""

from __future__ import annotations

import copy
from typing import Any

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow.models import infer_signature

from pipelines.tracking.mlflow_tracker import MlflowTracker


def log_torch_model(
    tracker: MlflowTracker,
    model: Any,
    name: str,
    example: np.ndarray,
    register: str | None = None,
    step: int = 0,
) -> str:
    """Log ``model`` (a CPU copy, in eval mode) under ``name`` in the tracker's run; returns its
    ``models:/`` URI. ``example`` is a small batch of real inputs: it traces the export, types the
    signature and is shown in the UI.

    ``step`` is where the model was chosen (the evaluation that made it the best, or the last step):
    MLflow links the model to the run at that step and copies the run's metrics logged at that step
    to the model, so the model page and the run's Models tab show the evaluation that picked it."""
    net = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        output = net(torch.as_tensor(example)).numpy()
    # log_model finds the store and the experiment through the fluent API's globals.
    mlflow.set_tracking_uri(tracker.tracking_uri)
    mlflow.set_experiment(experiment_id=tracker.experiment_id)
    tracker.flush()  # the metrics at `step` are read back from the server: every one sent first
    info = mlflow.pytorch.log_model(
        net,
        name=name,
        signature=infer_signature(example, output),
        input_example=example,
        # Stated, not inferred: inference imports every package and takes seconds.
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        serialization_format="pt2",
        run_id=tracker.run_id,
        registered_model_name=register,
        step=int(step),
    )
    return str(info.model_uri)
