"""DQN end to end: CartPole solved on real Ray with a real MLflow store, Pong through the CNN path,
and bad input refused with exit 2 before any actor starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.config import load
from components.replay.pixel_buffer import PixelReplayBuffer
from components.rl.dqn.config import DQNConfig
from pipelines.cli.main import main
from pipelines.dqn import loop as loop_module
from pipelines.dqn.local_wiring import LocalWiring
from pipelines.dqn.loop import CURVE_EVERY_S, train_loop
from pipelines.dqn.preflight import preflight
from pipelines.dqn.run import run_dqn
from tests.fakes import MemoryTracker
from tests.pipelines import ui_reads
from tests.pipelines.dqn_cli import train_dqn_argv
from tests.pipelines.dqn_ray import ray_dqn

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")
PONG = str(REPO / "configs/dqn/pong.yaml")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--set", "env.id=CartPol-v1"], "no environment 'CartPol-v1'. Did you mean 'CartPole-v1'"),
        (["--set", "env.id=Pendulum-v1"], "Box action space; DQN needs discrete actions"),
        (
            ["--set", "env.id=ALE/Pong-v5", "--set", "atari.enabled=true"],
            "has pixel observations (4, 84, 84) (uint8); network.kind: mlp needs vectors",
        ),
        (
            [
                "--set",
                "learner.batch_size=128",
                "--set",
                "replay.capacity=100",
                "--set",
                "replay.min_size=100",
            ],
            "learner.batch_size: 128 is larger than replay.capacity 100",
        ),
        (["--set", "learner.lr=-1"], "learner.lr: -1.0 is out of range"),
        (["--set", "learner.n_stepp=3"], "unknown key 'learner.n_stepp'. Did you mean 'n_step'?"),
        (["--set", "learner.num_threads=2"], "learner.num_threads was renamed learner.threads"),
    ],
)
def test_bad_input_exits_2_before_anything_starts(args, needle, tracking_uri, capsys):
    assert main(["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not Path(tracking_uri[len("sqlite:///") :]).exists()  # no run was opened


@pytest.mark.parametrize(
    "sets,needle",
    [
        (
            ["learner.device=cpu", "learner.cuda_graph=true"],
            "learner.cuda_graph: true needs a CUDA learner, but learner.device is cpu; allowed with "
            "learner.device: cpu: auto (eager updates there) or false",
        ),
        (
            ["learner.device=cpu", "learner.precision=bf16"],
            "learner.precision: bf16 needs a CUDA learner, but learner.device is cpu; allowed with "
            "learner.device: cpu: fp32",
        ),
        pytest.param(
            ["learner.device=auto", "learner.cuda_graph=true"],
            "learner.cuda_graph: true needs a CUDA learner, but this learner runs on the CPU "
            "(learner.device: auto); allowed here: auto",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="auto is a GPU here"),
        ),
        (["local=true", "collectors.inference=gpu"], "collectors.inference: gpu needs Ray"),
    ],
)
def test_gpu_only_options_where_there_is_no_gpu_exit_2_before_a_run_opens(sets, needle, tracking_uri, capsys):
    args = [a for kv in sets for a in ("--set", kv)]
    assert main(["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not Path(tracking_uri[len("sqlite:///") :]).exists()  # no run was opened


def test_how_the_learner_and_collectors_compute_may_change_on_resume():
    """A checkpoint's config identity leaves out the graph, precision, TF32 and inference keys: a run
    checkpointed on a GPU resumes on a CPU, and checkpoints written before these keys existed verify."""
    from pipelines.dqn.checkpoint import config_identity

    plain = config_identity(load(DQNConfig, CARTPOLE))
    changed = config_identity(
        load(
            DQNConfig,
            CARTPOLE,
            [
                "learner.cuda_graph=false",
                "learner.tf32=false",
                "learner.device=cuda",
                "learner.precision=bf16",
                "collectors.inference=gpu",
                "collectors.inference_gpus=0.5",
                "collectors.inference_wait_ms=3",
            ],
        )
    )
    assert changed == plain
    assert not any(
        k.startswith(("learner.cuda_graph", "learner.tf32", "collectors.inference")) for k in plain
    )
    assert config_identity(load(DQNConfig, CARTPOLE, ["learner.lr=0.01"])) != plain  # the maths still counts


def test_more_collectors_than_cpus_is_refused_before_the_run_opens(tracking_uri):
    """Issue #15, item 9: exit 2 and no FAILED run left behind (the check used to wait for Ray)."""
    proc = subprocess.run(
        train_dqn_argv(tracking_uri, "num_cpus=2", "collectors.num_collectors=3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "collectors.num_collectors: 3 collectors need one CPU each, the Ray cluster has 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(tracking_uri[len("sqlite:///") :]).exists()  # no run was opened


def test_pong_runs_through_the_cnn_and_the_pixel_replay():
    cfg = load(
        DQNConfig,
        PONG,
        [
            "local=true",
            "max_env_steps=300",
            "replay.min_size=64",
            "learner.batch_size=16",
            "replay.samples_per_insert=4",
            "collectors.envs_per_collector=2",
            "collectors.num_collectors=1",
            "collectors.steps_per_call=50",
            "eval.every_env_steps=1000000",
            "learner.batches_per_call=1",
        ],
    )
    captured = {}
    original = LocalWiring.__init__

    def spy(self, *a, **k):
        original(self, *a, **k)
        captured["wiring"] = self

    LocalWiring.__init__ = spy  # type: ignore[method-assign]
    try:
        res, learner = run_dqn(cfg, MemoryTracker(), progress=False)
    finally:
        LocalWiring.__init__ = original  # type: ignore[method-assign]
    replay = captured["wiring"].replay
    assert isinstance(replay, PixelReplayBuffer)  # each frame stored once, stacks rebuilt by index
    assert res.env_steps >= 300 and len(replay) > 64 and learner.steps > 0
    batch = replay.sample(2)
    assert batch.obs.dtype == np.uint8 and batch.obs.shape == (2, 4, 84, 84)
    assert batch.obs.max() > 0  # real frames, not zeros
    q = learner.online(torch.as_tensor(batch.obs))
    assert q.shape == (2, 6) and torch.isfinite(q).all()


@pytest.mark.slow
@pytest.mark.ray
def test_cartpole_is_solved_on_ray_and_tracked(tracking_uri, tmp_path):
    """2 collector actors + a replay actor + the learner reach a greedy evaluation mean ≥ 475."""
    proc = subprocess.run(
        train_dqn_argv(
            tracking_uri,
            "num_cpus=2",
            "max_env_steps=600000",  # the race seeds needed up to 180k; time is the cap
            "max_time_s=400",
            extra=("--experiment", "e2e", "--register", "cartpole-dqn"),
        ),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reached eval return 475" in proc.stdout
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    evals = client.get_metric_history(run.info.run_id, "eval/return")
    assert len(evals) >= 2 and max(m.value for m in evals) >= 475
    solved = next(m.step for m in evals if m.value >= 475)
    assert int(run.data.tags["adl.result.solved_at_env_steps"]) == solved
    for key in (
        "learner/loss",
        "learner/mean_q",
        "learner/mean_abs_td",
        "learner/updates_per_s",
        "train/return",
        "train/env_steps_per_s",
        "train/q_start",
        "train/mc_return",
        "replay/size",
        "replay/samples_per_insert",
    ):
        assert key in run.data.metrics, key
    # What the UI shows, in its order: the evaluation first, then the learner; no fault counters
    # (none happened), no single-point charts, no series twice; Ape-X's fixed ε is a param:
    # 2 collectors × 8 envs at ε_i = 0.4^(1 + 7i/15), their mean.
    assert ui_reads.chart_sections(run) == ["eval", "learner", "replay", "train"]
    assert not ui_reads.one_point_charts(client, run) and not ui_reads.repeated_series(client, run)
    assert float(run.data.params["collectors.mean_epsilon"]) == pytest.approx(
        np.mean(0.4 ** (1 + 7 * np.arange(16) / 15)), abs=1e-6
    )
    # The learner's loss is a curve even though CartPole is solved within seconds of learning: a point
    # every CURVE_EVERY_S (0.04 s) of it, not one per log_every_s. How many depends on how soon it was
    # solved (CI saw 35 in 1.4 s), so the spacing is checked: the median gap, as the last point comes after
    # the final evaluation.
    loss = client.get_metric_history(run.info.run_id, "learner/loss")
    gaps = np.diff(sorted(m.timestamp / 1000 for m in loss))
    assert len(loss) >= 10 and np.median(gaps) <= 3 * CURVE_EVERY_S, (len(loss), gaps)
    assert len(loss) >= 5 * len(client.get_metric_history(run.info.run_id, "replay/size"))
    # The run's Duration covers the time its result counts from the launch.
    solved_at_s = float(run.data.tags["adl.result.solved_at_s"])
    assert (run.info.end_time - run.info.start_time) / 1000 >= solved_at_s
    assert "**Result:** DQN on CartPole-v1" in run.data.tags["mlflow.note.content"]
    # The models carry the evaluation that chose them: best_model its best eval return at that step.
    models = {m.name: m for m in client.search_logged_models([exp.experiment_id])}
    best = {m.key: m for m in client.get_logged_model(models["best_model"].model_id).metrics}
    top = max(m.value for m in evals)
    assert best["eval/return"].value == top
    assert best["eval/return"].step == next(m.step for m in evals if m.value == top)
    assert float(run.data.tags["adl.result.best_eval_return"]) == top
    assert not [k for k in best if k.startswith("system/")]
    # --register: the best model is version 1 of the name, linked to its run and its logged model.
    (version,) = client.search_model_versions("name='cartpole-dqn'")
    assert int(version.version) == 1 and version.run_id == run.info.run_id
    assert version.source == f"models:/{models['best_model'].model_id}"
    # The experiment is a model-training one, and the command ends with the run's page.
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert ui_reads.printed_run_page(proc.stdout)[1:] == (exp.experiment_id, run.info.run_id)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "final_model.pt", "best_model.pt", "learning_curve.png"} <= names
    state = torch.load(
        client.download_artifacts(run.info.run_id, "best_model.pt", str(tmp_path)), weights_only=True
    )
    assert any(k.startswith("head.") for k in state)


@pytest.mark.ray
def test_pong_on_ray_pushes_frames_once_into_the_pixel_replay_actor(ray_local):

    cfg = load(
        DQNConfig,
        PONG,
        [
            "max_env_steps=400",
            "replay.capacity=5000",
            "replay.min_size=64",
            "learner.batch_size=16",
            "replay.samples_per_insert=4",
            "collectors.envs_per_collector=2",
            "collectors.num_collectors=2",
            "collectors.steps_per_call=25",
            "eval.every_env_steps=1000000",
            "learner.batches_per_call=1",
        ],
    )
    with ray_dqn(cfg) as (_, wiring, learner):
        res = train_loop(cfg, wiring, learner, MemoryTracker(), progress=False)
        assert res.env_steps >= 400 and learner.steps > 0
        # Every transition the collectors reported reaches the replay actor once the adds in flight
        # land, plus at most the call each collector was still running when the loop stopped.
        ray_local.get(list(wiring.running))
        ray_local.get([c.flush.remote() for c in wiring.collectors])
        assert res.state is not None and res.state.inserts > 300
        assert res.state.inserts <= wiring.replay_size() <= res.state.inserts + 2 * 2 * 25
        batch = ray_local.get(wiring.replay.sample_many.remote(4, 1, 0.4))[0]
        assert batch.obs.shape == (4, 4, 84, 84) and batch.obs.dtype == np.uint8 and batch.obs.max() > 0
        # Rebuilt stacks are frame stacks: next_obs, n steps on, starts with obs's last 4 − n frames.
        assert ((batch.n >= 1) & (batch.n <= 3)).all()
        for o, nx, n in zip(batch.obs, batch.next_obs, batch.n.astype(int)):
            np.testing.assert_array_equal(nx[: 4 - n], o[n:])


def test_local_run_logs_the_epsilon_schedule_and_the_rolling_training_return():
    """One collector on a decaying ε: every log holds the ε its latest call acted with."""
    from components.rl.schedules import schedule_value

    cfg = load(
        DQNConfig,
        str(REPO / "configs/dqn/cartpole.yaml"),
        [
            "local=true",
            "collectors.num_collectors=1",
            "collectors.epsilon=schedule",
            "collectors.schedule.steps=2000",
            "max_env_steps=3000",
            "log_every_s=1e-9",  # a log after every collector call
            "eval.every_env_steps=1000000",
        ],
    )
    tracker = MemoryTracker()
    res, _ = run_dqn(cfg, tracker, progress=False)
    per_call = cfg.collectors.envs_per_collector * cfg.collectors.steps_per_call
    logged = tracker.metrics["epsilon"]
    sched = cfg.collectors.schedule
    assert len(logged) > 10 and logged[0][1] == sched.start and logged[-1][1] == pytest.approx(sched.end)
    for step, eps in logged:  # the ε of the call that ended at `step`, set where that call began
        assert eps == pytest.approx(schedule_value(sched, step - per_call)), step
    # The rolling-20 training return the run reports is the one its last log shows.
    assert res.train_return == tracker.metrics["train_return"][-1][1] and res.train_return > 0


def test_a_run_that_ends_before_its_first_log_still_logs_the_learner(monkeypatch):
    """A budget reached before the first full log logs one last row (the first log is put off here)."""
    monkeypatch.setattr(loop_module, "FIRST_LOG_S", 1e9)
    cfg = load(
        DQNConfig,
        CARTPOLE,
        ["local=true", "collectors.num_collectors=1", "max_env_steps=2000", "log_every_s=1e9"],
    )
    tracker = MemoryTracker()
    res, learner = run_dqn(cfg, tracker, progress=False)
    assert learner.steps > 0
    for key in ("replay_size", "env_steps_per_s"):
        (row,) = tracker.metrics[key]  # one full log: the final one, at the run's last env step
        assert row[0] == res.env_steps, key
    for key in ("loss", "mean_q", "train_return", "learner_steps"):  # the curve's points, then the last
        assert tracker.metrics[key][-1][0] == res.env_steps, key
    assert tracker.metrics["learner_steps"][-1][1] == learner.steps
    for key, rows in tracker.metrics.items():  # a value per step: a model chosen there lists each once
        steps = [step for step, _ in rows]
        assert steps == sorted(set(steps)), key


def test_a_run_shorter_than_log_every_s_draws_its_rates_as_lines_not_points():
    """The first full log comes FIRST_LOG_S (0.5 s) into the loop, not log_every_s: a CartPole run
    solved in under 2 s (CI saw one at 8,192 env steps) still logs its rates, replay and Q against
    returns twice, at that first log and at the end."""
    cfg = load(
        DQNConfig,
        CARTPOLE,
        ["local=true", "collectors.num_collectors=1", "max_time_s=1.5", "log_every_s=1e9"],
    )
    assert loop_module.FIRST_LOG_S == 0.5
    tracker = MemoryTracker()
    res, _ = run_dqn(cfg, tracker, progress=False)
    for key in ("env_steps_per_s", "updates_per_s", "replay_size", "samples_per_insert", "q_start"):
        rows = tracker.metrics[key]
        assert len(rows) == 2 and rows[0][0] < rows[1][0] == res.env_steps, (key, rows)


def test_the_driver_learners_placement_is_resolved_once_per_run(monkeypatch):
    """The pre-flight (its ``DQNSetup``) resolves where the learner runs and checks its GPU-only
    options; the learner takes that placement: ``learner.device`` goes to components/device.py once
    a run."""
    from components import device as device_module

    calls = []
    real = device_module.resolve_device
    monkeypatch.setattr(device_module, "resolve_device", lambda *a: calls.append(a) or real(*a))
    cfg = load(
        DQNConfig,
        CARTPOLE,
        ["local=true", "collectors.num_collectors=1", "max_env_steps=1500", "learner.device=cpu"],
    )
    plan = preflight(cfg, folders=False)
    assert calls == [("cpu", "learner.device")] and plan.setup.placement is not None
    res, learner = run_dqn(cfg, MemoryTracker(), progress=False, plan=plan)
    assert learner.steps > 0 and len(calls) == 1
    assert learner.learner.placement is plan.setup.placement  # type: ignore[attr-defined]
