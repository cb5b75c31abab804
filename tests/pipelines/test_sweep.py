"""``adl sweep`` on real Ray Tune and a real MLflow store: one parent run, one child per trial."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.sweep.plan import load_sweep, threads_for_trials
from pipelines.sweep.run import best_trial
from tests.pipelines import ui_reads
from tests.pipelines.sweeps import REPO, SWEEP, sweep


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


def test_a_sweep_config_is_frozen_and_its_name_comes_from_its_file():
    sweep, _ = load_sweep(REPO / "configs/sweeps/gan_ring8_gpu.yaml")
    assert sweep.name == "gan_ring8_gpu"  # not set in the file: its file's name, in a new config
    for section in (sweep, sweep.scheduler, sweep.resources):
        assert type(section).__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.resources.cpu = 0.5  # type: ignore[misc]


def test_trials_get_as_many_threads_as_cpus_unless_the_sweep_sets_them(tmp_path):
    gan, base = load_sweep(REPO / "configs/sweeps/gan_ring8_gpu.yaml")
    assert "threads" not in base["train"]
    assert threads_for_trials(gan, base)["train"]["threads"] == 2  # resources: {cpu: 2, gpu: 0.25}
    gan = dataclasses.replace(gan, resources=dataclasses.replace(gan.resources, cpu=0.5))
    assert threads_for_trials(gan, base)["train"]["threads"] == 1  # never 0 (torch's every core)
    seq, base = load_sweep(REPO / "configs/sweeps/lstm_vs_gru.yaml")
    assert base["train"]["threads"] == 1 and threads_for_trials(seq, base) == base  # set by the sweep
    qlearn, base = load_sweep(SWEEP)
    assert threads_for_trials(qlearn, base) == base  # Q-learning has no threads to set
    # A base config's own count is for a run alone: two threads there, one per one-CPU trial here.
    alone = tmp_path / "conditional_seeds.yaml"
    alone.write_text(
        f"family: gan\nbase_config: {REPO / 'configs/gan/mnist_dcgan_conditional.yaml'}\n"
        "search_space:\n  seed: {grid: [0, 1]}\nresources: {cpu: 1, gpu: 0}\n"
    )
    gan, base = load_sweep(alone)
    assert base["train"]["threads"] == 2 and threads_for_trials(gan, base)["train"]["threads"] == 1


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
