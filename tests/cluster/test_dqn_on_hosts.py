"""DQN submitted from a laptop to a cluster of separate hosts, and the faults such a cluster has: a worker
host killed, a worker's link cut, the MLflow server restarted, the laptop's ``--follow`` killed, the
driver's own host lost (the run resumed in a new job from the checkpoint in the artifact store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pipelines.cli.main import main
from tests.cluster.cluster import MLFLOW_BUCKET, MultiHostCluster, wait_for
from tests.cluster.conftest import (
    REPO,
    history,
    job_status,
    mean_rate,
    mlflow_client,
    runs_of,
    s3_keys,
    submit,
    wait_for_run,
    wait_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def dqn_cmd(experiment: str, *sets: str) -> tuple[str, ...]:
    """CartPole with one collector per worker host and no stop target: it trains for its time budget."""
    base = ("eval.stop_at_return=null", "collectors.num_collectors=2", *sets)
    return (
        "adl", "train", "dqn", "--config", "configs/dqn/cartpole.yaml", "--no-progress",
        "--experiment", experiment, *(a for s in base for a in ("--set", s)),
    )  # fmt: skip


def in_background(target, *args) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", target(*args)))
    thread.start()
    return thread, out


def learning(c: MultiHostCluster, experiment: str, points: int = 1):
    """The experiment's run, once its learner has logged ``points`` losses."""
    return wait_for_run(
        c, experiment, 180, lambda r: len(history(c, r.info.run_id, "learner/loss")) >= points
    )


def test_dqn_goes_on_through_a_cut_link_a_restarted_mlflow_server_and_a_dead_worker_host(hosts, capsys):
    """One DQN run, three faults in turn, each in a window of its own: w2's link cut for 20 s (nothing
    restarted: its collector answers again once the link is back), the MLflow server killed and back
    15 s later (training never waits for it; every metric logged meanwhile arrives, in order), then
    w2's host killed (its collector restarted once, counted). One run instead of three keeps the
    cluster suite short; each fault's own assertions and figures are unchanged."""
    thread, out = in_background(submit, hosts, "dqn-faults", *dqn_cmd("dqn-faults", "max_time_s=75"))
    run = learning(hosts, "dqn-faults")
    run_id = run.info.run_id
    client = mlflow_client(hosts)

    cut_ms = time.time() * 1000
    hosts.cut_link("w2", 20)
    back_ms = time.time() * 1000
    time.sleep(4)  # a restart during the cut would be logged by now (faults/ are logged every 2 s)
    assert "faults/collector_restarts" not in client.get_run(run_id).data.metrics

    hosts.kill_mlflow()
    down_ms = time.time() * 1000
    time.sleep(15)
    hosts.start_mlflow()
    up_ms = time.time() * 1000
    time.sleep(4)

    killed_ms = time.time() * 1000
    assert thread.is_alive(), "the run ended before its last fault: raise max_time_s"
    hosts.kill_host("w2")
    thread.join(timeout=300)
    text = capsys.readouterr()
    assert out.get("code") == 0, text.out[-3000:] + text.err[-2000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "adl.metrics_lost" not in run.data.tags

    # The link cut restarted nothing; the host's death restarted its one collector, once.
    assert run.data.metrics["faults/collector_restarts"] == 1
    assert run.data.metrics["faults/replay_restarts"] == 0  # the replay lives on the driver's host
    assert "collector 1 died" in text.out or "collector 0 died" in text.out

    # The server's absence: the job said so once and went on; what it logged meanwhile arrived, in order.
    assert text.out.count("adl: warning: the tracking server") == 1
    losses = history(hosts, run_id, "learner/loss")
    assert [m for m in losses if down_ms + 2000 < m.timestamp < up_ms - 2000]
    steps = [m.step for m in sorted(losses, key=lambda m: m.timestamp)]
    assert steps == sorted(steps)
    away = [m.value for m in history(hosts, run_id, "train/env_steps_per_s") if down_ms < m.timestamp < up_ms]
    assert away and min(away) > 0  # training did not wait for the server

    hosts.record(
        "a worker's link cut for 20 s mid-DQN",
        collector_restarts=0,
        env_steps_per_s_before=mean_rate(hosts, run_id, 0, cut_ms),
        env_steps_per_s_during=mean_rate(hosts, run_id, cut_ms + 2000, back_ms),
        env_steps_per_s_after=mean_rate(hosts, run_id, back_ms + 2000, down_ms),
    )
    hosts.record(
        "the MLflow server killed and restarted mid-DQN",
        server_away_s=round((up_ms - down_ms) / 1000, 1),
        loss_points_logged_while_away=len([m for m in losses if down_ms < m.timestamp < up_ms]),
        env_steps_per_s_before=mean_rate(hosts, run_id, back_ms + 2000, down_ms),
        env_steps_per_s_while_away=mean_rate(hosts, run_id, down_ms, up_ms),
        metrics_lost=0,
    )
    hosts.record(
        "a worker host killed mid-DQN",
        collector_restarts=run.data.metrics["faults/collector_restarts"],
        env_steps_per_s_before=mean_rate(hosts, run_id, up_ms, killed_ms),
        env_steps_per_s_after=mean_rate(hosts, run_id, killed_ms + 3000, 1e15),
        replay_lost_transitions=run.data.metrics.get("faults/replay_lost_transitions", 0),
    )
    # What a laptop sees of it, over HTTP: the job's id, the models and the checkpoint in the
    # artifact store (the MLflow server puts them on S3), the learning curve.
    assert run.data.tags["adl.ray_job_id"] == "dqn-faults" and run.data.tags["mlflow.source.type"] == "JOB"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"final_model.pt", "learning_curve.png", "checkpoint"} <= names
    stored = s3_keys(hosts, "artifacts/", bucket=MLFLOW_BUCKET)
    assert any(k.endswith(f"{run_id}/artifacts/final_model.pt") for k in stored)
    assert any(k.endswith(f"{run_id}/artifacts/checkpoint/replay.arrow") for k in stored)


def test_killing_the_laptops_follow_leaves_the_job_running_and_logs_reattach(hosts, capsys, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "submit",
        "--address",
        hosts.jobs,
        "--working-dir",
        str(REPO),
    ]
    cmd += ["--tracking-uri", hosts.mlflow, "--submission-id", "dqn-follow", "--follow", "--"]
    cmd += list(dqn_cmd("dqn-follow", "max_time_s=20"))
    log = tmp_path / "follow.log"
    with open(log, "wb") as f:
        client = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    wait_for(lambda: "MLflow run" in log.read_text() or 1 / 0, 120, "the job's first lines on the laptop")
    os.killpg(client.pid, signal.SIGKILL)  # the laptop's terminal is gone
    client.wait(timeout=10)
    assert job_status(hosts, "dqn-follow") == "RUNNING"
    t0 = time.time()
    code = main(["jobs", "--address", hosts.jobs, "logs", "dqn-follow", "--follow"])
    text = capsys.readouterr()
    assert code == 0, text.out[-3000:] + text.err[-2000:]
    assert "adl: DQN on CartPole-v1" in text.out and "adl: run id" in text.out  # the end, streamed
    assert "adl: job dqn-follow SUCCEEDED" in text.err
    (run,) = runs_of(hosts, "dqn-follow")
    assert run.info.status == "FINISHED"
    hosts.record(
        "the laptop's --follow killed", job_went_on=True, followed_again_to_the_end_s=round(time.time() - t0)
    )


def test_a_dqn_checkpoint_outlives_its_drivers_host_and_resumes_in_a_new_job(hosts, capsys):
    """The driver runs on worker w1 (``--entrypoint-resources``) and checkpoints every 5 s; each
    checkpoint is copied to the artifact store. w1 dies with its disk; a new job on the head resumes
    the run from the copy."""
    sets = ("max_time_s=35", "checkpoint.every_s=5", "collectors.num_collectors=1")
    on_w1 = ("--entrypoint-resources", '{"host_w1": 1}')
    cmd = dqn_cmd("dqn-driver-dies", *sets)
    assert submit(hosts, "dqn-driver-dies", *cmd, extra=on_w1, follow=False) == 0
    client = mlflow_client(hosts)

    def checkpointed_twice():
        run = learning(hosts, "dqn-driver-dies")
        uploads = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
        assert "checkpoint/manifest.json" in uploads
        assert len(history(hosts, run.info.run_id, "learner/loss")) >= 5
        return run

    run = wait_for(checkpointed_twice, 180, "a checkpoint in the artifact store")
    assert run.data.tags["adl.checkpoint_dir"].startswith("/tmp/home/.adl/runs/")  # the driver host's disk
    hosts.kill_host("w1", disk=True)
    reached = max(m.step for m in history(hosts, run.info.run_id, "learner/loss"))
    assert wait_job(hosts, "dqn-driver-dies", 120) == "FAILED"
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # its driver never closed it
    hosts.heal()  # w1 comes back with an empty disk
    code = submit(hosts, "dqn-resume", *dqn_cmd("dqn-driver-dies", *sets), "--resume", run.info.run_id)
    text = capsys.readouterr()
    assert code == 0, text.out[-3000:] + text.err[-2000:]
    assert f"downloaded run {run.info.run_id}'s checkpoint from the tracking server" in text.out
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    resumed_at = history(hosts, run.info.run_id, "resume/learner_steps")
    assert len(resumed_at) == 1 and resumed_at[0].value > 0  # continued, not started over
    assert int(run.data.tags["adl.result.final_env_steps"]) > resumed_at[0].step
    hosts.record(
        "the DQN driver's host lost (resumed in a new job)",
        env_steps_logged_before_the_loss=reached,
        env_steps_resumed_from=resumed_at[0].step,
        env_steps_lost=max(0, reached - resumed_at[0].step),
        checkpoint_every_s=5,
    )


def test_submit_checks_the_clusters_python_before_uploading(hosts, capsys):
    """A cluster whose python lacks a package the job needs is found before anything is uploaded: a
    probe job asks the cluster's own python; here for a module no python has."""
    from tests.cluster.conftest import job_client

    code = submit(
        hosts, "missing-module", "adl", "train", "qlearn", extra=("--require", "adl_no_such_module")
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot import adl_no_such_module" in err and "nothing was uploaded" in err
    assert "Traceback" not in err
    ids = {j.submission_id for j in job_client(hosts).list_jobs()}
    assert "missing-module" not in ids and any(i.startswith("adl-probe-") for i in ids)
