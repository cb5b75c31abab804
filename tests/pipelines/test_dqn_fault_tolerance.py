"""DQN that survives: checkpoints and --resume, bad checkpoints refused, collector and replay actor
faults on real Ray, SIGTERM of a real ``adl train dqn`` process followed by ``--resume``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.config import load
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.cycle import InProcessLearner
from components.rl.dqn.learner import Learner
from pipelines.cli.main import main
from pipelines.dqn.checkpoint import Checkpointer
from pipelines.dqn.loop import train_loop
from pipelines.dqn.preflight import DQNSetup
from pipelines.dqn.state import LoopControl
from tests.fakes import MemoryTracker
from tests.pipelines.dqn_cli import CARTPOLE, REPO, SMALL, as_sets, train_dqn_argv
from tests.pipelines.dqn_ray import ray_dqn


def _only_run(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def _steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_local_run_checkpoints_resumes_exports_and_refuses_bad_checkpoints(tracking_uri, tmp_path, capsys):
    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    ck = f"checkpoint.dir={tmp_path / 'ckpt'}"
    assert main([*base, *as_sets([*SMALL, ck, "max_env_steps=3000"])]) == 0
    client, run = _only_run(tracking_uri)
    run_id = run.info.run_id
    ckpt = Path(run.data.tags["adl.checkpoint_dir"])
    assert ckpt == tmp_path / "ckpt" / run_id / "checkpoint"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert set(manifest["files"]) == {"learner.pt", "replay.arrow"}
    assert manifest["loop"]["env_steps"] >= 3000 and manifest["learner_steps"] > 0
    assert manifest["replay"]["size"] == 2000 and manifest["replay"]["inserts"] > 2000  # wrapped
    state = torch.load(ckpt / "learner.pt", weights_only=True)
    assert state["learner"]["steps"] == manifest["learner_steps"]
    assert isinstance(state["rng"]["torch"], torch.Tensor)

    # The replay as a table.
    out = tmp_path / "replay.parquet"
    assert main(["replay", "export", run_id, "--out", str(out), "--tracking-uri", tracking_uri]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 2000 and np.stack(df["obs"].to_numpy()).shape == (2000, 4)
    assert {"obs", "action", "reward", "next_obs", "done", "truncated", "priority"} <= set(df.columns)
    assert {"collector", "episode", "step"} <= set(df.columns) and (df["priority"] > 0).all()

    # Resume: the same run, counters continue, metrics at later steps.
    last_step = max(s for s, _ in _steps(client, run_id, "learner/steps"))
    assert main([*base, "--resume", run_id, *as_sets([*SMALL, ck, "max_env_steps=5000"])]) == 0
    client, run = _only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert _steps(client, run_id, "resume/learner_steps") == [
        (manifest["loop"]["env_steps"], float(manifest["learner_steps"]))
    ]
    assert _steps(client, run_id, "resume/replay_size")[0][1] == 2000
    learner_steps = _steps(client, run_id, "learner/steps")
    after = [(s, v) for s, v in learner_steps if s > last_step]
    # Counted on from the checkpoint: a curve point may come before the resumed learner's first update
    # (a point every 0.1 s), never below the checkpoint's count, and the learner does update.
    assert after and min(v for _, v in after) >= manifest["learner_steps"] < after[-1][1]
    assert all(b[1] >= a[1] for a, b in zip(learner_steps, learner_steps[1:]))  # never restarts at 0
    assert int(run.data.tags["adl.result.final_env_steps"]) >= 5000

    # A truncated learner.pt is refused with its name, and the run is left as it was.
    manifest2 = json.loads((ckpt / "manifest.json").read_text())
    pt = ckpt / "learner.pt"
    pt.write_bytes(pt.read_bytes()[:1000])
    capsys.readouterr()
    assert main([*base, "--resume", run_id, *as_sets([*SMALL, ck, "max_env_steps=9000"])]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint file {pt} is truncated" in err and "Traceback" not in err
    client, run = _only_run(tracking_uri)
    assert run.info.status == "FINISHED" and int(run.data.tags["adl.result.final_env_steps"]) < 9000
    assert pt.stat().st_size == 1000 and json.loads((ckpt / "manifest.json").read_text()) == manifest2

    # A checkpoint from another config names the keys that differ.
    assert main([*base, "--resume", run_id, *as_sets([*SMALL, ck, "learner.lr=0.01"])]) == 2
    err = capsys.readouterr().err
    lr = load(DQNConfig, CARTPOLE).learner.lr
    assert "was written with another config" in err and f"learner.lr: {lr} in the checkpoint, 0.01 now" in err


def test_missing_checkpoint_is_refused_naming_the_folder(tracking_uri, tmp_path, capsys):
    from pipelines.tracking import open_run

    tracker = open_run(tracking_uri, "e")
    tracker.finish("FAILED")
    args = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local"]
    assert main([*args, "--resume", tracker.run_id, "--set", f"checkpoint.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert f"no checkpoint at {tmp_path / tracker.run_id / 'checkpoint'}" in err
    assert main([*args, "--resume", "0123abc"]) == 2
    assert "no MLflow run '0123abc'" in capsys.readouterr().err


class KillingTracker(MemoryTracker):
    """Kills actors as the run passes given env steps: collector 0 with ray.kill, collector 1's process
    with SIGKILL, then the replay actor (after a checkpoint exists)."""

    def __init__(self, ckpt: Path) -> None:
        super().__init__()
        self.wiring = None
        self.ckpt = ckpt
        self.done: dict[str, int] = {}
        self.killed_pids: list[int] = []

    def log_metrics(self, metrics, step):
        super().log_metrics(metrics, step)
        import ray

        w = self.wiring
        if "ray.kill" not in self.done and step >= 1500:
            ray.kill(w.collectors[0])
            self.done["ray.kill"] = step
        elif (
            "ray.kill" in self.done
            and "sigkill" not in self.done
            and step >= 3000
            and step > self.done["ray.kill"]
        ):
            pid = ray.get(w.collectors[1].pid.remote())
            os.kill(pid, signal.SIGKILL)
            self.killed_pids.append(pid)
            self.done["sigkill"] = step
        elif (
            "sigkill" in self.done
            and "replay" not in self.done
            and step > self.done["sigkill"]  # log_metrics runs more than once per step
            and (self.ckpt / "manifest.json").exists()
        ):
            self.done["replay"] = step
            ray.kill(w.replay)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("placement", ["driver", "actor"])
def test_killed_collectors_and_replay_actor_are_replaced(placement, ray_local, tmp_path, capfd):
    """With the learner in the driver, and in its own actor (which must be pointed at the new replay)."""
    from pipelines.distributed.learner_actor import RemoteLearner

    cfg = load(
        DQNConfig,
        CARTPOLE,
        [
            *SMALL,
            "collectors.num_collectors=2",
            "max_env_steps=15000",  # room after the last kill even on a fast, quiet machine
            "replay.capacity=20000",
            "eval.every_env_steps=100000",
            f"learner.placement={placement}",
        ],
    )
    with ray_dqn(cfg) as (setup, wiring, learner):
        assert isinstance(learner, RemoteLearner if placement == "actor" else InProcessLearner)
        ckpt = Checkpointer(cfg, tmp_path / "r" / "checkpoint", learner, wiring, setup.spaces)
        wiring.restore_fault_counts({"collector_restarts": 3.0})  # an earlier session's (issue #15, item 7)
        tracker = KillingTracker(ckpt.dir)
        tracker.wiring = wiring
        res = train_loop(
            cfg, wiring, learner, tracker, progress=False, control=LoopControl(None, 0.25, ckpt.save)
        )
        assert res.env_steps >= 15000 and not res.interrupted
        assert set(tracker.done) == {"ray.kill", "sigkill", "replay"}, tracker.done
        assert len(wiring.collectors) == 2
        pids = ray_local.get([c.pid.remote() for c in wiring.collectors], timeout=30)
        assert not set(pids) & set(tracker.killed_pids)  # both are live replacements
        restarts = tracker.metrics["collector_restarts"]
        assert restarts[0][1] == 3.0 and restarts[-1][1] == 5.0  # counting on from the earlier session
        assert tracker.metrics["replay_restarts"][-1][1] == 1.0
        env_steps = [s for s, _ in tracker.metrics["env_steps_per_s"]]
        # Env steps keep rising after each fault (the last stretch may be shorter than one log interval).
        assert max(env_steps) > tracker.done["sigkill"] > tracker.done["ray.kill"]
        assert res.env_steps > tracker.done["replay"] > tracker.done["sigkill"]
        assert wiring.replay_size() > 0 and learner.steps > 0
        # The learner goes on training from the restarted replay.
        steps = tracker.metrics["learner_steps"]
        at_kill = max(v for s, v in steps if s <= tracker.done["replay"])
        assert learner.steps > at_kill
    err = capfd.readouterr().err
    assert "collector 0 died" in err and "collector 1 died" in err and "restart 5" in err
    assert "replay actor died" in err and f"restarted from the snapshot {ckpt.dir / 'replay.arrow'}" in err
    lost = int(err.split("; lost ")[1].split(" ")[0])
    assert 0 <= lost <= tracker.done["replay"]


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_then_resume_continues_one_run(tracking_uri, tmp_path):
    cmd = train_dqn_argv(
        tracking_uri, *SMALL, "num_cpus=2", "max_env_steps=1000000", "max_time_s=120", "checkpoint.every_s=2"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 120
        learning = False  # wait for a periodic checkpoint taken after learning started
        while time.time() < deadline and not learning and proc.poll() is None:
            time.sleep(0.5)
            for m in (tmp_path / ".adl" / "runs").glob("*/checkpoint/manifest.json"):
                with contextlib.suppress(OSError, ValueError):  # replaced while reading
                    learning = json.loads(m.read_text())["learner_steps"] > 0
        assert learning, proc.communicate(timeout=30)[1][-3000:]
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "got SIGTERM" in err and "continue with: adl train dqn --resume" in err
    client, run = _only_run(tracking_uri)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    manifest = json.loads((tmp_path / ".adl/runs" / run_id / "checkpoint/manifest.json").read_text())
    saved_steps, saved_env = manifest["learner_steps"], manifest["loop"]["env_steps"]
    assert saved_steps > 0 and manifest["replay"]["size"] > 0
    before = _steps(client, run_id, "learner/steps")
    assert before[-1][0] <= saved_env  # the exit checkpoint is after the last metric

    resume = [*cmd[:-2], "--set", f"max_env_steps={saved_env + 1500}", "--resume", run_id]
    proc2 = subprocess.run(resume, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    client, run = _only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert _steps(client, run_id, "resume/replay_size") == [(saved_env, float(manifest["replay"]["size"]))]
    assert _steps(client, run_id, "resume/learner_steps") == [(saved_env, float(saved_steps))]
    history = _steps(client, run_id, "learner/steps")
    after = [(s, v) for s, v in history if s > saved_env]
    assert after and after[0][1] >= saved_steps  # continues from the saved learner step
    logged = sorted(client.get_metric_history(run_id, "learner/steps"), key=lambda m: m.timestamp)
    assert all(b.step >= a.step and b.value >= a.value for a, b in zip(logged, logged[1:]))  # continuous
    assert int(run.data.tags["adl.result.final_env_steps"]) >= saved_env + 1500


@pytest.mark.parametrize(
    "where,needle",
    [
        ("/proc/x", "checkpoint.dir: cannot write in /proc/x"),
        ("{tmp}/a_file/ckpt", "checkpoint.dir: {tmp}/a_file is not a folder"),
    ],
)
def test_an_unwritable_checkpoint_dir_is_refused_before_the_run_opens(
    where, needle, tracking_uri, tmp_path, capsys
):
    """Issue #15, item 4: found before training, exit 2, no run opened (not a traceback at the first
    checkpoint after all the training)."""
    (tmp_path / "a_file").write_text("")
    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    assert main([*base, "--set", f"checkpoint.dir={where.format(tmp=tmp_path)}"]) == 2
    err = capsys.readouterr().err
    assert needle.format(tmp=tmp_path) in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no store, no run, no folders


def test_a_checkpoint_write_that_fails_mid_run_is_a_warning_and_the_run_keeps_its_models(
    tracking_uri, tmp_path, capsys
):
    """Issue #15, item 4: after the first good checkpoint the folder stops taking writes (here a file
    sits where the next checkpoint's folder must go: root ignores read-only modes). The run trains on,
    keeps the last good checkpoint, says so, and ends FINISHED with its models logged."""
    import threading

    from pipelines.dqn.checkpoint_check import verify

    ck = tmp_path / "ck"
    done = threading.Event()

    def sabotage() -> None:
        while not done.is_set():
            for m in ck.glob("*/checkpoint/manifest.json"):
                with contextlib.suppress(FileExistsError):  # a write in progress: its folder is there
                    open(m.parent.with_name("checkpoint.tmp"), "x").close()
                    return
            time.sleep(0.02)

    saboteur = threading.Thread(target=sabotage, daemon=True)
    saboteur.start()
    sets = [*SMALL, f"checkpoint.dir={ck}", "checkpoint.every_s=0.2", "max_env_steps=4000"]
    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    try:
        assert main([*base, *as_sets(sets)]) == 0
    finally:
        done.set()
    err = capsys.readouterr().err
    assert "failed (FileExistsError" in err and "training goes on, the last good checkpoint (step" in err
    client, run = _only_run(tracking_uri)
    assert run.info.status == "FINISHED" and int(run.data.tags["adl.result.final_env_steps"]) >= 4000
    assert "FileExistsError" in run.data.tags["adl.checkpoint_error"]
    assert run.data.metrics["faults/checkpoint_failures"] >= 2  # the periodic ones after it, and the exit one
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"final_model.pt", "learning_curve.png", "checkpoint"} <= names
    cfg = load(DQNConfig, CARTPOLE, [*SMALL, f"checkpoint.dir={ck}", "max_env_steps=4000"])
    setup = DQNSetup.from_config(cfg)
    good = verify(ck / run.info.run_id / "checkpoint", cfg, setup.obs_shape, setup.n_actions, setup.net)
    assert 0 < good["loop"]["env_steps"] < 4000  # the last good one, whole, from before the failure


def test_fault_counts_and_the_training_time_carry_across_a_resume(tmp_path):
    """Issue #15, item 7: restarts and lost transitions go on from the checkpoint's counts, and
    max_time_s counts the loop's time only: a resume whose start-up was long still trains for the
    time the budget has left (it used to spend it all on start-up, 0 env steps)."""
    from pipelines.dqn.checkpoint import restore
    from pipelines.dqn.checkpoint_check import verify
    from pipelines.dqn.local_wiring import LocalWiring

    def session(sets: list[str]):
        cfg = load(DQNConfig, CARTPOLE, [*SMALL, "local=true", *sets])
        setup = DQNSetup.from_config(cfg)
        wiring = LocalWiring(cfg, setup.obs_shape, setup.obs_dtype, setup.n_actions)
        learner = InProcessLearner(Learner(setup.net, cfg.learner), wiring, cfg.learner.publish_every)
        return cfg, setup, wiring, learner

    cfg, setup, wiring, learner = session(["max_env_steps=2000"])
    faults = {"collector_restarts": 2.0, "replay_restarts": 1.0, "replay_lost_transitions": 300.0}
    wiring.restore_fault_counts(faults)  # what a Ray session with faults leaves in its counters
    res = train_loop(cfg, wiring, learner, MemoryTracker(), progress=False)
    ckpt = Checkpointer(cfg, tmp_path / "r" / "checkpoint", learner, wiring, setup.spaces)
    ckpt.save(res.state)
    assert res.state.faults == faults and 0 < res.state.train_s < res.state.wall_s + 1

    left = 2.0
    cfg2, setup2, wiring2, learner2 = session(
        ["max_env_steps=1000000", f"max_time_s={res.state.train_s + left}"]
    )
    manifest = verify(ckpt.dir, cfg2, setup2.obs_shape, setup2.n_actions, setup2.net)
    start = restore(manifest, learner2, wiring2)
    tracker = MemoryTracker()
    startup_s = 100.0  # as if Ray and the actors had taken this long to come up
    res2 = train_loop(
        cfg2,
        wiring2,
        learner2,
        tracker,
        progress=False,
        t_start=time.time() - startup_s,
        control=LoopControl(start),
    )
    assert res2.env_steps > start.env_steps + 500  # it trained for the time left
    assert left <= res2.state.train_s - start.train_s < left + 5
    assert res2.wall_s > startup_s  # wall_s (metrics, solved_at_s) still counts from the first start
    assert tracker.metrics["collector_restarts"][0][1] == 2.0 and res2.state.faults == faults
    assert tracker.metrics["replay_lost_transitions"][-1][1] == 300.0
