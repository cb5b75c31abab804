"""Stopping a sweep (signals) and resuming it: what a resume trusts, and what it refuses."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.signing import signed
from pipelines.sweep.signature import sign_folder
from tests.pipelines.sweeps import REPO, SWEEP, sweep, sweep_argv


class _Touch:
    """Unpickling this runs ``touch PATH``: what a crafted tuner.pkl does to whoever loads it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _no_ray(monkeypatch):
    from pipelines.distributed import ray_runtime

    def refuse(*_a, **_k):
        raise AssertionError("Ray was started for a sweep that should have been refused")

    monkeypatch.setattr(ray_runtime, "init_ray", refuse)


def test_resume_never_unpickles_state_adl_did_not_sign(tmp_path, monkeypatch, capsys):
    """Issue #15, item 1: a crafted adl_sweep.json + tuner.pkl, and a tuner.pkl swapped into a sweep
    adl did write, are refused (exit 2) before Ray or Tune open them; the payload never runs."""
    monkeypatch.chdir(tmp_path)
    _no_ray(monkeypatch)
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(_Touch(marker))
    pickle.loads(pickle.dumps(_Touch(tmp_path / "proof")))  # the payload is live: it does run if loaded
    assert (tmp_path / "proof").exists()

    evil = tmp_path / ".adl/sweeps/evil"
    evil.mkdir(parents=True)
    state = {"sweep_file": SWEEP, "overrides": [], "tracking_uri": f"sqlite:///{tmp_path}/m.db"}
    state |= {"experiment": "e", "tune_path": str(evil), "parent_run_id": "0" * 32}
    state |= {"sweep_text": Path(SWEEP).read_text(), "base": {}}
    (evil / "adl_sweep.json").write_text(json.dumps(state))
    (evil / "tuner.pkl").write_bytes(crafted)
    assert main(["sweep", "--resume", "evil"]) == 2
    err = capsys.readouterr().err
    assert "adl_sweep.json has no adl signature" in err and "--trust-state" in err
    assert "Traceback" not in err

    # A sweep adl wrote and signed, whose tuner.pkl was replaced afterwards.
    good = tmp_path / ".adl/sweeps/good"
    good.mkdir()
    (good / "adl_sweep.json").write_text(json.dumps(signed({**state, "tune_path": str(good)})))
    (good / "tuner.pkl").write_bytes(pickle.dumps({"a": "tuner"}))
    sign_folder(str(good))
    (good / "tuner.pkl").write_bytes(crafted)
    assert main(["sweep", "--resume", str(good)]) == 2
    assert f"{good}/tuner.pkl differs from what adl signed" in capsys.readouterr().err
    # ... or a newer experiment state dropped beside it (Tune loads the newest).
    (good / "tuner.pkl").write_bytes(pickle.dumps({"a": "tuner"}))
    (good / "experiment_state-2099-01-01_00-00-00.json").write_bytes(crafted)
    assert main(["sweep", "--resume", "good"]) == 2
    assert "experiment_state-2099-01-01_00-00-00.json is not listed" in capsys.readouterr().err
    assert not marker.exists()


def test_a_sweep_name_cannot_climb_out_of_its_storage(tracking_uri, tmp_path, monkeypatch, capsys):
    """Issue #15, item 2: the name is one folder under the storage root; nothing is written elsewhere."""
    work = tmp_path / "a/b/c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    _no_ray(monkeypatch)
    assert sweep(tracking_uri, "name=../../../escaped_sweep") == 2
    assert "name: '../../../escaped_sweep' is not a sweep name" in capsys.readouterr().err
    assert main(["sweep", "--resume", "../../../escaped_sweep"]) == 2
    assert "--resume: '../../../escaped_sweep' is not a sweep name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c"]
    assert sweep(tracking_uri, "storage_path=/proc/x") == 2  # a storage folder that takes no files
    assert "storage_path: cannot write in /proc/x" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c"]


def test_sigterm_during_fit_asks_tune_to_stop_and_exits_143(monkeypatch):
    """The handler adl puts around ``tuner.fit()`` owns SIGTERM (Ray's would exit at once): the first
    signal becomes a stop request that Tune's loop picks up (``StopOnSignal``), and the exit code
    says which signal it was."""
    import signal

    from pipelines.distributed.tune_callbacks import STOP_REQUESTED
    from pipelines.sweep import run as sweep_mod

    class Tuner:
        def fit(self):
            os.kill(os.getpid(), signal.SIGTERM)
            assert STOP_REQUESTED.wait(5)  # what StopOnSignal hands to Tune at its next step
            return "results"

    stop = sweep_mod._stop_signals()
    with stop:
        plan = SimpleNamespace(
            metric="eval_return", mode="max", sweep=SimpleNamespace(metric_tiebreak=None, mode_tiebreak="min")
        )
        results = sweep_mod._fit(Tuner(), stop, plan)
    assert results == "results" and stop.requested() and stop.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) != stop._handle  # the previous handler is back


@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_stops_a_sweep_as_killed_and_its_signed_state_resumes(tracking_uri, tmp_path):
    """Issue #15, item 5: Ctrl-C after the first of three trials exits 130 with the parent and the
    running trial KILLED, names the unfinished trials and prints the resume command; the resume
    (whose state adl signed while Tune saved it) runs only those, and the parent ends FINISHED.
    Issue #23, item 2: the sweep's base config is edited between the stop and the resume (the lake
    made slippery); the resume runs the sweep as it started, and says the file changed."""
    import signal
    import subprocess
    import time

    lake = tmp_path / "lake.yaml"
    lake.write_text((REPO / "configs/qlearn/frozenlake.yaml").read_text())
    sweep_file = tmp_path / "lake_sweep.yaml"
    sweep_file.write_text(Path(SWEEP).read_text().replace("configs/qlearn/frozenlake.yaml", str(lake)))
    cmd = sweep_argv(tracking_uri)
    first = [*cmd, "--config", str(sweep_file), "--experiment", "sig", "--set", "name=sig"]
    for item in (
        "max_concurrent=1",
        "scheduler.kind=fifo",
        "artifacts_every=100",
        "search_space={alpha.start: {grid: [0.1, 0.2, 0.3]}}",
        "overrides={episodes: 4000, eval_every: 400}",
    ):
        first += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        first, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    client = MlflowClient(tracking_uri)

    def children(status: str | None = None):
        exp = client.get_experiment_by_name("sig")
        if exp is None:
            return []
        runs = client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != ''")
        return [r for r in runs if status is None or r.info.status == status]

    try:
        deadline = time.time() + 150
        while not children("FINISHED") and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
        done = {r.info.run_id: r.data.metrics["eval/return"] for r in children("FINISHED")}
        assert len(done) == 1, proc.communicate(timeout=30)[1][-3000:]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "stopped by SIGINT: 2 unfinished trial(s): sweep_trial_" in err, err[-3000:]
    assert "(alpha.start=0.2); 1 not started yet" in err  # the running one; the third was not made yet
    assert f"continue with: adl sweep --resume {tmp_path / '.adl/sweeps/sig'}" in err
    parent = next(
        r
        for r in client.search_runs([client.get_experiment_by_name("sig").experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    )
    assert parent.info.status == "KILLED" and "adl.best_run_id" not in parent.data.tags
    assert not children("RUNNING")

    lake.write_text(lake.read_text().replace("is_slippery: false", "is_slippery: true"))
    resumed = subprocess.run(
        [*cmd, "--resume", "sig"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{lake} changed since the sweep started; the resume runs it as it started" in resumed.stderr
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    runs = children()
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    # Every trial on the deterministic lake the sweep started with, also the one that first started
    # after the resume (alpha.start=0.3: its params are logged then, from the config it trains).
    assert {r.data.params["env.kwargs.is_slippery"] for r in runs} == {"False"}
    assert any(r.data.params["alpha.start"] == "0.3" for r in runs)
    for run_id, value in done.items():  # the finished trial was not run again
        assert [m.step for m in client.get_metric_history(run_id, "eval/return")][-1] == 4000
        assert client.get_run(run_id).data.metrics["eval/return"] == value
