"""``adl sweep`` on real Ray Tune and a real MLflow store: one parent run, one child per trial."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.signing import signed
from pipelines.sweep import best_trial
from pipelines.sweep_plan import load_sweep, threads_for_trials
from pipelines.sweep_signature import sign_folder
from tests.pipelines import ui_reads

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


def sweep(tracking_uri: str, *sets: str, experiment: str | None = None) -> int:
    """``adl sweep`` of the Q-learning sweep on 2 CPUs, with ``--set`` for each item."""
    argv = ["sweep", "--config", SWEEP, "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    argv += ["--experiment", experiment] if experiment else []
    for item in sets:
        argv += ["--set", item]
    return main(argv)


def test_bad_search_space_is_refused_before_ray_starts(tracking_uri, capsys):
    assert sweep(tracking_uri, "search_space={alpha.strat: {grid: [0.1]}}") == 2
    assert "search_space.alpha.strat = 0.1: unknown key 'alpha.strat'" in capsys.readouterr().err
    assert sweep(tracking_uri, "search_space={gamma: {loguniform: [0, 1]}}") == 2
    assert "bounds must be > 0" in capsys.readouterr().err
    assert sweep(tracking_uri, "search_space={gamma: {grid: [0.9, 1.5]}}") == 2
    assert "search_space.gamma = 1.5: gamma: 1.5 is out of range" in capsys.readouterr().err


def test_env_kwargs_are_tried_before_ray_starts(tracking_uri, tmp_path, monkeypatch, capsys):
    """Issue #15, item 6: a kwarg the env's constructor refuses ends the sweep before Ray, every trial
    retrying it, starts; in the base config (overrides) and in a searched value alike."""
    monkeypatch.chdir(tmp_path)
    assert sweep(tracking_uri, "overrides={env: {kwargs: {map_name: 9x9}}}") == 2
    err = capsys.readouterr().err
    assert "env.kwargs for 'FrozenLake-v1' were refused by gymnasium (KeyError: '9x9')" in err
    assert sweep(tracking_uri, "search_space={env.kwargs.map_name: {grid: [4x4, 9x9]}}") == 2
    err = capsys.readouterr().err
    assert "search_space.env.kwargs.map_name = '9x9': env.kwargs" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no sweep state, no store: nothing was started


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


@pytest.mark.slow
@pytest.mark.ray
def test_two_trial_sweep_writes_parent_and_children(tracking_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {grid: [0.1, 0.5]}}",
        "overrides={episodes: 200, eval_every: 100}",
        "metric_tiebreak=max_abs_q_error",
        "overhead=1000",  # pictures and a checkpoint at every report, whatever they cost
        experiment="sw",
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("sw")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("adl.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    assert sorted(float(c.data.params["alpha.start"]) for c in children) == [0.1, 0.5]
    for child in children:
        assert child.info.status == "FINISHED"
        # Named by what was swept; the swept value is the config's own param, not a sweep.* copy.
        alpha = child.data.params["alpha.start"]
        assert child.info.run_name.endswith(f"alpha.start={float(alpha):.4g}"), child.info.run_name
        assert not any(k.startswith("sweep.") for k in child.data.params)
        assert child.data.tags["adl.swept"] == "alpha.start"
        # The command that made it is the sweep's, not the Ray worker process the trial ran in.
        assert child.data.tags["adl.command"] == parent.data.tags["adl.command"]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "eval/return")] == [100, 200]
        # The sweep's metric is the run's first: MLflow's comparison view starts with the first one.
        assert next(iter(child.data.metrics)) == "eval/return"
        top = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"learning_curves.png", "trainer.pt", "config.yaml"} <= top
        reports = {a.path for a in client.list_artifacts(child.info.run_id, "reports/step_00000100")}
        assert "reports/step_00000100/learning_curves.png" in reports
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep-qlearn_frozenlake"
    # The best child by eval_return, ties broken by the smaller max |Q − Q*|, linked from the parent.
    by_id = {c.info.run_id: c.data.metrics for c in children}
    expected = max(by_id, key=lambda r: (by_id[r]["eval/return"], -by_id[r]["eval/max_abs_q_error"]))
    assert parent.data.tags["adl.best_run_id"] == expected
    note = parent.data.tags["mlflow.note.content"]
    assert f"#/experiments/{exp.experiment_id}/runs/{expected}?workflowType=machine_learning" in note
    assert note.startswith(
        "Sweep **qlearn_frozenlake** of `qlearn`: 2 trials varying `alpha.start` (0.1, 0.5), "
    )
    # One best trial: Tune's progress line names the trial adl names (ties broken alike), and the
    # command ends with the parent run's page.
    out = capsys.readouterr().out
    tune_says = re.findall(r"Current best trial: (\S+) with eval_return=", out)
    adl_says = re.findall(
        r"adl: best trial: eval_return=.*Tune trial (\S+), MLflow run ([0-9a-f]{32})\)", out
    )
    assert tune_says and adl_says and (tune_says[-1], expected) == adl_says[-1], out[-3000:]
    assert ui_reads.printed_run_page(out)[1:] == (exp.experiment_id, parent.info.run_id)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_scatter.png", "best_config.yaml", "sweep.yaml", "sweep_results.csv"} <= arts
    table = pq.read_table(
        client.download_artifacts(parent.info.run_id, "sweep_results.parquet", str(tmp_path))
    )
    rows = table.to_pylist()
    assert sorted(r["run_id"] for r in rows) == sorted(by_id)
    for r in rows:
        assert r["config.alpha.start"] == pytest.approx(
            float(client.get_run(r["run_id"]).data.params["alpha.start"])
        )
        assert r["eval_return"] == pytest.approx(by_id[r["run_id"]]["eval/return"])


def test_best_trial_breaks_ties_by_the_second_metric():
    trials = [
        {"run_id": "a", "metrics": {"eval_return": 1.0, "max_abs_q_error": 0.63}},
        {"run_id": "b", "metrics": {"eval_return": 1.0, "max_abs_q_error": 0.01}},
        {"run_id": "c", "metrics": {"eval_return": 0.5, "max_abs_q_error": 0.0}},
    ]
    assert best_trial(trials, "eval_return", "max", None, "min")["run_id"] == "a"  # trial order
    assert best_trial(trials, "eval_return", "max", "max_abs_q_error", "min")["run_id"] == "b"
    assert best_trial(trials, "eval_return", "max", "max_abs_q_error", "max")["run_id"] == "a"
    assert best_trial(trials, "eval_return", "min", "max_abs_q_error", "min")["run_id"] == "c"
    no_second = [{"run_id": "x", "metrics": {"eval_return": 1.0}}, trials[1]]
    assert best_trial(no_second, "eval_return", "max", "max_abs_q_error", "min")["run_id"] == "b"


@pytest.mark.slow
@pytest.mark.ray
def test_storage_path_may_be_a_uri_tune_accepts(tracking_uri, tmp_path, monkeypatch, capsys):
    """Tune's state goes to the URI (here file://, as s3:// or gs:// would on a cluster), and adl's
    state file beside it, so the sweep resumes from any machine that reaches the storage; the name
    is taken there."""
    monkeypatch.chdir(tmp_path)
    remote = tmp_path / "bucket"
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {grid: [0.5]}}",
        "overrides={episodes: 100, eval_every: 100}",
        f"storage_path={remote.as_uri()}",
        "name=uri_sweep",
        experiment="uri",
    )
    assert code == 0
    assert (remote / "uri_sweep").is_dir() and any((remote / "uri_sweep").glob("experiment_state*.json"))
    state = remote / "uri_sweep/adl_sweep.json"
    assert state.is_file() and remote.as_uri() in state.read_text()
    assert not (tmp_path / ".adl/sweeps/uri_sweep").exists()
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("uri").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    capsys.readouterr()
    again = sweep(tracking_uri, f"storage_path={remote.as_uri()}", "name=uri_sweep", experiment="uri")
    err = capsys.readouterr().err
    assert again == 2 and f"adl sweep --resume {remote.as_uri()}/uri_sweep" in err


@pytest.mark.slow
@pytest.mark.ray
def test_asha_stops_the_worst_trials_early_and_their_runs_end_finished(tracking_uri, tmp_path, monkeypatch):
    """``scheduler.kind: asha`` (the ring8 sweep's default): trials far behind at a rung are stopped;
    each stopped trial's run is closed FINISHED and tagged ``adl.early_stopped``, with fewer reports
    than the trials ASHA kept."""
    monkeypatch.chdir(tmp_path)
    code = sweep(
        tracking_uri,
        # The best first: the others meet its results at each rung (ASHA compares with what is there).
        "search_space={alpha.start: {grid: [0.9, 0.5, 0.01, 0.005]}}",
        "overrides={episodes: 400, eval_every: 50}",
        "metric=max_abs_q_error",
        "mode=min",
        "max_concurrent=2",
        "resources={cpu: 1}",
        "scheduler={kind: asha, grace_period: 1, reduction_factor: 2}",
        experiment="asha",
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("asha").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    reports = {c.info.run_id: len(client.get_metric_history(c.info.run_id, "eval/return")) for c in children}
    stopped = [c for c in children if c.data.tags.get("adl.early_stopped") == "true"]
    assert stopped, reports
    assert all(reports[c.info.run_id] < 8 for c in stopped)
    assert max(reports.values()) == 8  # the best trial ran all 400 episodes


@pytest.mark.slow
@pytest.mark.ray
def test_pbt_exploits_trials_from_their_checkpoints(tracking_uri, tmp_path, monkeypatch):
    """``scheduler.kind: pbt`` (gan_ring8.yaml's documented alternative): four Q-learning trials, one
    MLflow run each; PBT clones the best trials' checkpoints into the worst with perturbed step
    sizes, and a cloned trial's run shows the new values it continued with (``hparams/alpha.start``)."""
    monkeypatch.chdir(tmp_path)
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {choice: [0.02, 0.05, 0.6, 0.9]}}",
        "overrides={episodes: 300, eval_every: 50}",
        "metric=max_abs_q_error",
        "mode=min",
        "num_samples=4",
        "max_concurrent=4",
        "resources={cpu: 0.5}",
        "scheduler={kind: pbt, perturbation_interval: 2}",
        "seed=3",
        experiment="pbt",
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("pbt").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["adl.trial_id"] for c in children}) == 4  # an exploit opens no second run
    schedules = [
        [m.value for m in client.get_metric_history(c.info.run_id, "hparams/alpha.start")] for c in children
    ]
    assert all(s for s in schedules)  # each trial logged the values it started with
    exploited = [s for s in schedules if len(set(s)) > 1]
    assert exploited, schedules  # at least one trial went on with values PBT changed
    for c in children:  # every trial trained to its last episode, exploited or not
        assert max(m.step for m in client.get_metric_history(c.info.run_id, "eval/return")) == 300


@pytest.mark.slow
@pytest.mark.ray
def test_optuna_search_samples_within_the_space(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {uniform: [0.2, 0.8]}}",
        "overrides={episodes: 100, eval_every: 100}",
        "search=optuna",
        "num_samples=2",
        "scheduler.kind=fifo",
        "name=opt_sweep",
        experiment="opt",
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("opt").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    alphas = [float(r.data.params["alpha.start"]) for r in children]
    assert len(children) == 2 and all(0.2 <= a <= 0.8 for a in alphas) and alphas[0] != alphas[1]


@pytest.mark.ray
@pytest.mark.parametrize("config", ["gan_ring8_gpu.yaml", "lstm_vs_gru_gpu.yaml"])
def test_a_gpu_sweep_on_a_cluster_without_gpus_is_refused_before_any_trial(
    config, tracking_uri, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--config", str(REPO / "configs/sweeps" / config), "--tracking-uri", tracking_uri]
    argv += ["--num-cpus", "2", "--set", "resources.gpu=0.5", "--set", "resources.cpu=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "resources.gpu: each trial asks for 0.5 GPU, but the Ray cluster has 0" in err
    assert "Traceback" not in err
    client = MlflowClient(tracking_uri)
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())  # no run
    assert not (tmp_path / ".adl/sweeps").exists()  # no sweep state either


def test_a_cuda_trial_without_a_gpu_share_is_refused_before_ray(tracking_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--config", str(REPO / "configs/sweeps/gan_ring8.yaml"), "--tracking-uri", tracking_uri]
    assert main([*argv, "--set", "overrides={train.device: cuda}"]) == 2
    err = capsys.readouterr().err
    assert "train.device: cuda needs a GPU, but each trial asks Ray for resources.gpu: 0" in err
    assert "Traceback" not in err and not (tmp_path / ".adl").exists()


def test_trials_get_as_many_threads_as_cpus_unless_the_sweep_sets_them():
    gan, base = load_sweep(REPO / "configs/sweeps/gan_ring8_gpu.yaml")
    assert "threads" not in base["train"]
    assert threads_for_trials(gan, base)["train"]["threads"] == 2  # resources: {cpu: 2, gpu: 0.25}
    gan.resources.cpu = 0.5
    assert threads_for_trials(gan, base)["train"]["threads"] == 1  # never 0 (torch's every core)
    seq, base = load_sweep(REPO / "configs/sweeps/lstm_vs_gru.yaml")
    assert base["train"]["threads"] == 1 and threads_for_trials(seq, base) == base  # set by the sweep
    qlearn, base = load_sweep(SWEEP)
    assert threads_for_trials(qlearn, base) == base  # Q-learning has no threads to set


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.ray
def test_two_trials_at_half_a_gpu_each_both_train_on_cuda(tracking_uri, tmp_path, monkeypatch):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    monkeypatch.chdir(tmp_path)
    argv = [
        "sweep",
        "--config",
        str(REPO / "configs/sweeps/gan_ring8_gpu.yaml"),
        "--tracking-uri",
        tracking_uri,
    ]
    sets = [
        "resources.gpu=0.5",
        "resources.cpu=1",
        "scheduler.kind=fifo",
        "train.steps=40",
        "report_every=20",
    ]
    sets += ["search_space={seed: {grid: [0, 1]}}", "max_concurrent=2"]
    assert main([*argv, *(a for s in sets for a in ("--set", s))]) == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("adl-gan").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert all(c.data.params["device"].startswith("cuda") and c.data.params["gpu_name"] for c in children)
    assert all("system/gpu_utilization_percentage" in c.data.metrics for c in children)


def test_a_trial_that_raises_is_a_failed_child_run_with_its_traceback(tracking_uri, monkeypatch):
    """Issue #15, item 6: a trial that fails at run time (here its trainer's constructor) leaves a
    FAILED child run holding the error, and retrying it (max_failures) appends to the same run."""
    from ray import tune

    from pipelines.distributed import tune_trial
    from pipelines.families import Family
    from pipelines.tracking import open_run
    from pipelines.tracking.metric_names import QLEARN

    def build(cfg):
        raise RuntimeError("the simulator lost its licence")

    class Context:
        def get_trial_id(self):
            return "abc12_00001"

        def get_trial_name(self):
            return "sweep_trial_abc12_00001"

    family = Family("qlearn", QLEARN, lambda cfg: "qlearn", build=build)
    monkeypatch.setattr(tune_trial, "get_family", lambda name: family)
    monkeypatch.setattr(tune, "get_context", lambda: Context())
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    parent = open_run(tracking_uri, "sw-fail", run_name="sweep-x")
    spec = tune_trial.TrialSpec("qlearn", {}, tracking_uri, "sw-fail", parent.run_id, "x", os.getcwd())
    for _attempt in range(2):  # the first try, and Tune's retry of it
        with pytest.raises(RuntimeError, match="lost its licence"):
            tune_trial.sweep_trial({"alpha.start": 0.3}, spec)

    client = MlflowClient(tracking_uri)
    (child,) = client.search_runs([parent.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    assert child.info.status == "FAILED" and child.info.run_name == "#1 alpha.start=0.3"
    assert child.data.tags["adl.trial_name"] == "sweep_trial_abc12_00001"
    assert child.data.params["alpha.start"] == "0.3"
    assert child.data.tags["adl.error"] == "RuntimeError: the simulator lost its licence"
    text = Path(client.download_artifacts(child.info.run_id, "error.txt")).read_text()
    assert text.startswith("Traceback") and "RuntimeError: the simulator lost its licence" in text


def test_sigterm_during_fit_asks_tune_to_stop_and_exits_143(monkeypatch):
    """The handler adl puts around ``tuner.fit()`` owns SIGTERM (Ray's would exit at once): the first
    signal becomes a stop request that Tune's loop picks up (``StopOnSignal``), and the exit code
    says which signal it was."""
    import signal

    from pipelines import sweep as sweep_mod
    from pipelines.distributed.tune_callbacks import STOP_REQUESTED

    class Tuner:
        def fit(self):
            os.kill(os.getpid(), signal.SIGTERM)
            assert STOP_REQUESTED.wait(5)  # what StopOnSignal hands to Tune at its next step
            return "results"

    stop = sweep_mod._stop_signals()
    with stop:
        results = sweep_mod._fit(Tuner(), stop)
    assert results == "results" and stop.requested() and stop.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) != stop._handle  # the previous handler is back


@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_stops_a_sweep_as_killed_and_its_signed_state_resumes(tracking_uri, tmp_path):
    """Issue #15, item 5: Ctrl-C after the first of three trials exits 130 with the parent and the
    running trial KILLED, names the unfinished trials and prints the resume command; the resume
    (whose state adl signed while Tune saved it) runs only those, and the parent ends FINISHED."""
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    first = [*cmd, "--config", SWEEP, "--experiment", "sig", "--set", "name=sig"]
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

    resumed = subprocess.run(
        [*cmd, "--resume", "sig"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    runs = children()
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    for run_id, value in done.items():  # the finished trial was not run again
        assert [m.step for m in client.get_metric_history(run_id, "eval/return")][-1] == 4000
        assert client.get_run(run_id).data.metrics["eval/return"] == value
