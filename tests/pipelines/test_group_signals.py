"""A signal to the whole process group (what ``timeout``, ``scancel`` and ``kill -- -PGID`` send; Ctrl-C
in a terminal) ends a sweep as a signal to ``adl`` alone does: exit 143, the parent and running
trials KILLED, the resume hint. Ray's processes are in a session of their own, so they are still
there to stop in order. (Before: the GCS died first, adl waited 60 s for it and exited 1, the parent
run left RUNNING.)"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.pipelines.sweeps import sweep_argv

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_to_the_process_group_ends_a_sweep_cleanly(tracking_uri, tmp_path):
    cmd = sweep_argv(tracking_uri)
    cmd += ["--config", SWEEP, "--experiment", "grp", "--set", "name=grp", "--set", "max_concurrent=1"]
    cmd += ["--set", "scheduler.kind=fifo", "--set", "search_space={alpha.start: {grid: [0.1, 0.2]}}"]
    cmd += ["--set", "overrides={episodes: 20000, eval_every: 500}"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    client = MlflowClient(tracking_uri)

    def running_trial() -> bool:
        exp = client.get_experiment_by_name("grp")
        runs = client.search_runs([exp.experiment_id]) if exp else []
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        return bool(children) and bool(client.get_metric_history(children[0].info.run_id, "eval/return"))

    try:
        t0 = time.time()
        while not running_trial():
            assert proc.poll() is None and time.time() - t0 < 150, proc.communicate(timeout=30)[1][-3000:]
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as `timeout` sends it
        sent = time.time()
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-3000:]
    assert time.time() - sent < 45  # not a 60 s wait for a dead GCS
    assert "stopped by SIGTERM" in err and f"adl sweep --resume {tmp_path / '.adl/sweeps/grp'}" in err
    runs = client.search_runs([client.get_experiment_by_name("grp").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in runs)
