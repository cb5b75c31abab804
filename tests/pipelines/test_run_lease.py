"""One writer per run: a run's lease refuses a second trainer while its holder lives, and is taken over
once the holder is gone (a dead pid on this host, a lease not touched for a while from another)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.dqn.lease import LEASE, LeaseHeld, RunLease
from tests.pipelines.dqn_cli import train_dqn_argv

HOLD = (
    "import sys, time; from pipelines.dqn.lease import RunLease; RunLease(sys.argv[1], 'r1').acquire(); "
    + ("print('held', flush=True); time.sleep(60)")
)


def test_a_held_lease_refuses_another_writer_and_a_dead_holders_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(LeaseHeld, match=f"run r1 is being trained by pid {holder.pid} on "):
        RunLease(tmp_path, "r1").acquire()
    holder.send_signal(signal.SIGKILL)  # its holder dies without releasing it
    holder.wait(timeout=10)
    with RunLease(tmp_path, "r1") as mine:
        assert json.loads((tmp_path / LEASE).read_text())["pid"] == os.getpid() == mine.me["pid"]
    assert not (tmp_path / LEASE).exists()  # released


def test_a_lease_from_another_host_holds_until_it_goes_stale(tmp_path):
    (tmp_path / LEASE).write_text(json.dumps({"pid": 1, "host": "another-host", "since": time.time()}))
    with pytest.raises(LeaseHeld, match="by pid 1 on another-host"):
        RunLease(tmp_path, "r1", stale_s=60).acquire()
    old = time.time() - 120  # not touched for two minutes: its holder is gone
    os.utime(tmp_path / LEASE, (old, old))
    RunLease(tmp_path, "r1", stale_s=60).acquire().release()


@pytest.mark.slow
def test_resuming_a_run_that_still_trains_is_refused_and_leaves_it_alone(tracking_uri, tmp_path, capsys):
    ck = tmp_path / "ck"
    sets = [
        "collectors.num_collectors=1",
        "collectors.envs_per_collector=4",
        "replay.min_size=256",
        "eval.stop_at_return=null",
        "checkpoint.every_s=1",
        f"checkpoint.dir={ck}",
    ]
    first = subprocess.Popen(
        train_dqn_argv(tracking_uri, *sets, extra=("--local",)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        t0 = time.time()
        while not list(ck.glob(f"*/{LEASE}")) or not list(ck.glob("*/checkpoint/manifest.json")):
            assert first.poll() is None and time.time() - t0 < 120
            time.sleep(0.2)
        run_id = next(ck.glob(f"*/{LEASE}")).parent.name
        resume = train_dqn_argv(tracking_uri, *sets, "max_time_s=60", extra=("--local", "--resume", run_id))
        assert main(resume[3:]) == 2  # (argv after `python -m pipelines.cli`)
        err = capsys.readouterr().err
        assert f"run {run_id} is being trained by pid {first.pid}" in err and "Traceback" not in err
        assert MlflowClient(tracking_uri).get_run(run_id).info.status == "RUNNING"
        assert first.poll() is None  # the first trainer goes on, untouched
    finally:
        first.send_signal(signal.SIGKILL)  # then it dies without a word
        first.wait(timeout=30)
    # Its lease is stale now: the resume takes it over, and trains what is left of the budget.
    assert (
        main(train_dqn_argv(tracking_uri, *sets, "max_time_s=3", extra=("--local", "--resume", run_id))[3:])
        == 0
    )
    assert not (ck / run_id / LEASE).exists()
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "FINISHED"
    assert Path(ck / run_id / "checkpoint" / "manifest.json").is_file()
