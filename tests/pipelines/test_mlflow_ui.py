"""What a user meets in the MLflow UI, read back with the client the UI reads (tests/pipelines/ui_reads.py):
the experiment opens on its runs, the command ends with the run's page, the evaluation comes first,
values that would be single points are params or tags, one best trial. The DQN, sequence and sweep
end-to-end tests read the same for their families (test_dqn.py, test_seq.py, test_sweep.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.distributed.tune_sweep import tune_ranks_like_adl
from pipelines.sweep.run import best_trial, describe_trials
from pipelines.tracking.metric_names import DQN, GAN, QLEARN, SEQ, NamedTracker
from pipelines.tracking.uri import where_to_look
from tests.fakes import MemoryTracker
from tests.pipelines import ui_reads

REPO = Path(__file__).resolve().parents[2]
FROZEN = str(REPO / "configs/qlearn/frozenlake.yaml")


def test_a_qlearn_run_lands_on_its_runs_and_reads_eval_first(tracking_uri, capsys):
    argv = ["train", "qlearn", "--config", FROZEN, "--tracking-uri", tracking_uri, "--set", "episodes=300"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("adl-qlearn")
    (run,) = client.search_runs([exp.experiment_id])
    # A model-training experiment, and the command's last lines: the UI command for this store, then
    # the run's own page in the model-training views.
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri {tracking_uri}" in out
    assert ui_reads.printed_run_page(out) == ("http://127.0.0.1:5000", exp.experiment_id, run.info.run_id)
    assert out.rstrip().splitlines()[-1].startswith("adl: then open http://127.0.0.1:5000/#/experiments/")
    # Its charts: the evaluation first, then training; each a curve; no series twice.
    assert ui_reads.chart_sections(run) == ["eval", "train"]
    assert not ui_reads.one_point_charts(client, run) and not ui_reads.repeated_series(client, run)
    assert "**Result:** finished qlearn in" in run.data.tags["mlflow.note.content"]


def test_where_to_look_names_the_page_for_a_server_and_for_a_local_store():
    page = "/#/experiments/3/runs/abc?workflowType=machine_learning"
    server = where_to_look("abc", "adl-dqn", "http://mlflow.lan:5000/", "3")
    assert server.splitlines() == [
        "adl: run id abc (experiment 'adl-dqn')",
        f"adl: open http://mlflow.lan:5000{page}",
    ]
    local = where_to_look("abc", "adl-dqn", "sqlite:////data/mlflow.db", "3", what="sweep's parent run")
    first, ui, then = local.splitlines()
    assert first == "adl: sweep's parent run id abc (experiment 'adl-dqn')"
    assert ui.startswith("adl: look at it with: ") and ui.endswith(
        "mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:////data/mlflow.db"
    )
    assert then == f"adl: then open http://127.0.0.1:5000{page}"


def test_one_offs_become_tags_constants_params_and_repeats_are_dropped():
    memory = MemoryTracker()
    named = NamedTracker(memory, SEQ, lead="val_loss")
    for step, loss in ((20, 2.0), (40, 1.5)):
        named.log_metrics(
            {
                "train_loss": loss + 0.1,
                "train_bpc": loss + 0.1,
                "val_bpc": loss,
                "val_loss": loss,
                "params": 1234,
            }
            | {"source_bpc": 1.2, "time_to_target_s": 3.25, "steps_to_target": 40},
            step,
        )
    named.finish()
    assert set(memory.metrics) == {"eval/loss", "train/loss"}
    assert next(iter(memory.metrics)) == "eval/loss"  # the lead first
    assert memory.params == {"seq.param_count": 1234, "seq.source_bpc": 1.2}
    assert memory.tags["adl.result.time_to_target_s"] == "3.25"
    assert memory.tags["adl.result.steps_to_target"] == "40"


def test_section_names_put_the_evaluation_first_for_every_family():
    """MLflow sorts a run's chart sections by name: nothing a family logs sorts before ``eval``."""
    for names in (DQN, QLEARN, SEQ, GAN):
        sections = {name.rsplit("/", 1)[0] for name in names.groups.values()}
        assert min(sections) == "eval", (names.family, sorted(sections))
    assert sorted({n.rsplit("/", 1)[0] for n in DQN.groups.values()})[:2] == ["eval", "faults"]


def test_a_sweep_says_what_varied_not_what_was_searched():
    trials = [{"config": {"alpha.start": a, "seed": 0}} for a in (0.5, 0.1)]
    assert describe_trials(trials, ["alpha.start", "seed"]) == (
        "2 trials varying `alpha.start` (0.1, 0.5); `seed` = 0 in all"
    )
    same = [{"config": {"alpha.start": 0.1, "seed": 2}}] * 2
    assert describe_trials(same, ["alpha.start", "seed"]) == (
        "2 trials, all with the same values (`alpha.start` = 0.1, `seed` = 2)"
    )
    mixed = [{"config": {"cell": c, "lr": lr}} for c, lr in (("lstm", 0.01), ("gru", 0.003), ("gru", 0.01))]
    assert describe_trials(mixed, ["cell", "lr"]) == "3 trials varying `cell` (gru, lstm), `lr` (0.003, 0.01)"


def test_tunes_best_trial_line_ranks_as_adl_does_while_the_sweep_runs():
    from ray.tune.experimental import output

    def trial(trial_id, ret, err, status="TERMINATED"):
        result = {"eval_return": ret, "max_abs_q_error": err}
        return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)

    trials = [trial("a", 1.0, 0.6), trial("b", 1.0, 0.01), trial("c", 2.0, 0.0, status="ERROR")]
    tune_rank = output._current_best_trial
    assert tune_rank(trials, "eval_return", "max")[0].trial_id == "c"  # Tune: an errored trial's result
    with tune_ranks_like_adl(
        "eval_return",
        partial(
            best_trial, metric="eval_return", mode="max", tiebreak="max_abs_q_error", tiebreak_mode="min"
        ),
    ):
        best, metric = output._current_best_trial(trials, "eval_return", "max")
        assert (best.trial_id, metric) == ("b", "eval_return")  # adl: the tie goes to the closer Q
        assert output._current_best_trial(trials, None, None) == (None, None)  # Tune prints no line
    assert output._current_best_trial is tune_rank
    with (
        pytest.raises(RuntimeError),
        tune_ranks_like_adl(
            "eval_return",
            partial(best_trial, metric="eval_return", mode="max", tiebreak=None, tiebreak_mode="min"),
        ),
    ):
        raise RuntimeError("fit failed")
    assert output._current_best_trial is tune_rank  # put back whatever happened
