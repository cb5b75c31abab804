"""What the sweep's driver makes of trials that ended in error: FAILED child runs, never the best trial,
and a sweep with no result at all leaves no folder behind its name.

Tune's ``fit`` is replaced by one that opens the trials' runs as trials would and returns their
results (the real Ray starts; the parent run, state and signing are adl's own): a trial that
reported and then errored (its checkpoint could not be stored after it had closed its run FINISHED,
as on a cluster whose storage the workers do not share) and one that finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.distributed import tune_sweep
from pipelines.distributed.tune_callbacks import TRIAL_STATUSES
from pipelines.tracking import open_run

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


@dataclass
class Result:
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    error: Exception | None = None
    metrics_dataframe: Any = None


@dataclass
class FakeTuner:
    """Opens a FINISHED run for each trial that reported (as TuneReporter does before its last
    report), then returns what Tune would have."""

    spec: Any
    trials: list[tuple[str, float | None, Exception | None]]  # (trial id, eval_return or None, error)
    results: list[Result] = field(default_factory=list)

    def fit(self) -> list[Result]:
        for trial_id, value, error in self.trials:
            TRIAL_STATUSES[f"sweep_trial_{trial_id}"] = (trial_id, "ERROR" if error else "TERMINATED", {})
            if value is None:  # errored before its first report: no run, no metrics
                self.results.append(Result({"alpha.start": 0.3}, None, error))
                continue
            run = open_run(
                self.spec.tracking_uri,
                self.spec.experiment,
                run_name=f"#{trial_id}",
                parent_run_id=self.spec.parent_run_id,
                tags={"adl.trial_id": trial_id},
            )
            run.finish("FINISHED")
            metrics = {"eval_return": value, "trial_id": trial_id, "mlflow_run_id": run.run_id}
            self.results.append(Result({"alpha.start": value}, metrics, error))
        return self.results


def run_with(monkeypatch, tracking_uri: str, tmp_path: Path, trials, name: str) -> int:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune_sweep, "make_tuner", lambda sweep, spec, *a: FakeTuner(spec, trials))
    argv = ["sweep", "--config", SWEEP, "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    return main([*argv, "--experiment", name, "--set", f"name={name}", "--set", "scheduler.kind=fifo"])


def test_an_errored_trial_is_a_failed_run_and_never_the_best(tracking_uri, tmp_path, monkeypatch, capsys):
    lost = OSError("Unable to set up cluster storage: checkpoint_000003 could not be uploaded")
    trials = [("aa_00000", 0.5, None), ("aa_00001", 1.0, lost)]  # the errored one reported the better value
    assert run_with(monkeypatch, tracking_uri, tmp_path, trials, "errs") == 1
    out = capsys.readouterr().out
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("errs").experiment_id])
    by_trial = {r.data.tags.get("adl.trial_id"): r for r in runs}
    parent = by_trial[None]
    failed, finished = by_trial["aa_00001"], by_trial["aa_00000"]
    assert failed.info.status == "FAILED" and "could not be uploaded" in failed.data.tags["adl.error"]
    assert finished.info.status == "FINISHED"
    assert parent.info.status == "FAILED"
    assert parent.data.tags["adl.best_run_id"] == finished.info.run_id  # not the errored trial's 1.0
    best = client.download_artifacts(parent.info.run_id, "best_config.yaml", str(tmp_path))
    assert Path(best).read_text().strip() == "alpha.start: 0.5"
    assert "best trial: eval_return=0.5" in out and "1 trial(s) failed" in out


def test_a_sweep_with_no_result_frees_its_name(tracking_uri, tmp_path, monkeypatch, capsys):
    boom = RuntimeError("every trial died at once")
    trials = [("bb_00000", None, boom), ("bb_00001", None, boom)]
    assert run_with(monkeypatch, tracking_uri, tmp_path, trials, "empty") == 1
    out = capsys.readouterr().out
    assert "adl: best trial" not in out
    assert "before any trial reported a result: no best trial" in out and "can be used again" in out
    assert not (tmp_path / ".adl/sweeps/empty").exists()
    client = MlflowClient(tracking_uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("empty").experiment_id])
    assert parent.info.status == "FAILED"
    # The name is free: the same sweep is accepted again (and this time its trials report).
    trials = [("cc_00000", 0.7, None)]
    assert run_with(monkeypatch, tracking_uri, tmp_path, trials, "empty") == 0
