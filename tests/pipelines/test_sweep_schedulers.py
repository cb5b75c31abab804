"""Every scheduler and search the docs name, run: ASHA stopping trials, PBT exploiting checkpoints,
Optuna sampling (FIFO runs in every other sweep test)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.pipelines.sweeps import sweep


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


def pbt_sweep(tracking_uri, tmp_path, monkeypatch, experiment, synch):
    """Four Q-learning trials under PBT (perturbation every 2 reports); the MLflow client and the
    trials' runs, checked to be one FINISHED run per trial (an exploit opens no second run)."""
    monkeypatch.chdir(tmp_path)
    scheduler = (
        "{kind: pbt, perturbation_interval: 2, synch: true}"
        if synch
        else "{kind: pbt, perturbation_interval: 2}"
    )
    code = sweep(
        tracking_uri,
        "search_space={alpha.start: {choice: [0.02, 0.05, 0.6, 0.9]}}",
        "overrides={episodes: 300, eval_every: 50}",
        "metric=max_abs_q_error",
        "mode=min",
        "num_samples=4",
        "max_concurrent=4",
        "resources={cpu: 0.5}",
        f"scheduler={scheduler}",
        "seed=3",
        experiment=experiment,
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["adl.trial_id"] for c in children}) == 4
    return client, children


@pytest.mark.slow
@pytest.mark.ray
def test_pbt_exploits_trials_from_their_checkpoints(tracking_uri, tmp_path, monkeypatch):
    """``scheduler.kind: pbt`` (gan_ring8.yaml's documented alternative): four Q-learning trials, one
    MLflow run each; PBT clones the best trials' checkpoints into the worst with perturbed step
    sizes, and a cloned trial's run shows the new values it continued with (``hparams/alpha.start``).
    Synchronous PBT (``synch: true``): every trial waits at each perturbation point, so the worst
    always exploits the best, from a checkpoint at its own step. Asynchronous PBT depends on which
    trial reports when: a run here had no exploit, and in a CI run a trial cloned a finished
    trial's last checkpoint and so logged nothing after its step 200."""
    client, children = pbt_sweep(tracking_uri, tmp_path, monkeypatch, "pbt", synch=True)
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
def test_asynchronous_pbt_the_default_checkpoints_every_report_and_ends_every_trial(
    tracking_uri, tmp_path, monkeypatch
):
    """``scheduler.kind: pbt`` as documented, without ``synch`` (asynchronous, the default). Whether
    a trial exploits depends on timing (the test above runs the synchronous scheduler, where it must);
    what does not: the sweep ends cleanly, one FINISHED run per trial with the values it started with,
    and every trial has checkpoints on disk (PBT checkpoints at every report, for exploits)."""
    client, children = pbt_sweep(tracking_uri, tmp_path, monkeypatch, "pbt-async", synch=False)
    assert all(client.get_metric_history(c.info.run_id, "hparams/alpha.start") for c in children)
    trials = list(tmp_path.glob(".adl/sweeps/*/sweep_trial_*"))
    # Outside PBT a trial checkpoints only when its report budget allows, typically just at its end.
    assert len(trials) == 4 and all(len(list(t.glob("checkpoint_*"))) >= 2 for t in trials)


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
