"""``adl sweep`` on real Ray Tune and a real MLflow store: one parent run, one child per trial."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main

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


@pytest.mark.slow
@pytest.mark.ray
def test_two_trial_sweep_writes_parent_and_children(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {grid: [0.1, 0.5]}}",
        "overrides={episodes: 200, eval_every: 100}",
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
        assert [m.step for m in client.get_metric_history(child.info.run_id, "eval_return")] == [100, 200]
        top = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"learning_curves.png", "trainer.pt", "config.yaml"} <= top
        reports = {a.path for a in client.list_artifacts(child.info.run_id, "reports/step_00000100")}
        assert "reports/step_00000100/learning_curves.png" in reports
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["adl.best_run_id"] in {c.info.run_id for c in children}
    assert {"sweep_scatter.png", "best_config.yaml", "sweep.yaml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


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
