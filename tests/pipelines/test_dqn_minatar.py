"""A short MinAtar run through ``adl train dqn`` (``--local``) with a real MLflow store: the paper's
100-episode training average, the ε = 0.01 evaluation and the wall clock are logged, with the curves."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]
MINATAR = str(REPO / "configs/dqn/minatar.yaml")


@pytest.mark.slow
def test_a_short_minatar_run_logs_the_training_average_the_evaluation_and_the_curves(tracking_uri, tmp_path):
    sets = [
        "env.id=MinAtar/Breakout-v1",
        "local=true",
        "max_env_steps=3000",
        "replay.min_size=512",
        "learner.batch_size=32",
        "eval.every_env_steps=1500",
        "eval.episodes=2",
        "log_every_s=0.5",
        f"checkpoint.dir={tmp_path / 'runs'}",
    ]
    argv = ["train", "dqn", "--config", MINATAR, "--tracking-uri", tracking_uri, "--no-progress"]
    assert main([*argv, *(a for kv in sets for a in ("--set", kv))]) == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    rid = run.info.run_id

    def history(name: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(rid, name)]

    ret100, ret20 = history("train/return_100"), history("train/return")
    assert ret100 and ret100[-1][1] >= 0  # Breakout scores 0 or more per episode
    assert [s for s, _ in ret100] == [s for s, _ in ret20]  # beside the rolling 20, at every point
    assert len(history("eval/return")) >= 2  # at 1,500 and 3,000 env steps
    wall = history("train/wall_s")
    assert len(wall) >= 2 and all(b[1] >= a[1] for a, b in zip(wall, wall[1:]))  # from launch, rising
    assert run.data.params["eval.epsilon"] == "0.01" and run.data.params["network.convs"] == "[[16, 3, 1]]"
    assert int(run.data.tags["adl.result.final_learner_steps"]) > 0
    assert "learning_curve.png" in {a.path for a in client.list_artifacts(rid)}
