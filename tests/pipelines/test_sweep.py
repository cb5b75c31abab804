"""``adl sweep`` on real Ray Tune and a real MLflow store: one parent run, one child per trial."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.sweep import best_trial, load_sweep, threads_for_trials

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


@pytest.mark.slow
@pytest.mark.ray
def test_two_trial_sweep_writes_parent_and_children(tracking_uri, tmp_path, monkeypatch):
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
    assert f"#/experiments/{exp.experiment_id}/runs/{expected}" in parent.data.tags["mlflow.note.content"]
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
def test_storage_path_may_be_a_uri_tune_accepts(tracking_uri, tmp_path, monkeypatch):
    """Tune's state goes to the URI (here file://, as s3:// or gs:// would on a cluster); adl's small
    state file stays local, so the sweep can still be resumed by name."""
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
    state = tmp_path / ".adl/sweeps/uri_sweep/adl_sweep.json"
    assert state.is_file() and remote.as_uri() in state.read_text()
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("uri").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)


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
