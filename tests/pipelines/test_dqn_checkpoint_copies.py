"""Every DQN checkpoint is copied to the run's artifacts as it is written, its manifest last, so that it
outlives the machine that wrote it; a copy that fails costs the copy, never the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.tracking.mlflow_tracker import MlflowTracker

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")
SETS = [
    "collectors.num_collectors=1",
    "collectors.envs_per_collector=4",
    "replay.capacity=2000",
    "replay.min_size=256",
    "eval.every_env_steps=1000",
    "eval.episodes=1",
    "eval.stop_at_return=null",
    "log_every_s=0.2",
    "checkpoint.every_s=0.3",
    "max_env_steps=3000",
]


def train(tracking_uri: str, ck: Path) -> int:
    argv = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    return main([*argv, *(a for kv in [*SETS, f"checkpoint.dir={ck}"] for a in ("--set", kv))])


@pytest.mark.slow
def test_each_checkpoint_is_copied_as_it_is_written_manifest_last(tracking_uri, tmp_path, monkeypatch):
    sent: list[str] = []
    log_artifact = MlflowTracker.log_artifact

    def recording(self, path, artifact_path=None):
        if artifact_path == "checkpoint":
            sent.append(Path(path).name)
        log_artifact(self, path, artifact_path)

    monkeypatch.setattr(MlflowTracker, "log_artifact", recording)
    assert train(tracking_uri, tmp_path / "ck") == 0
    copies = [sent[i - 2 : i + 1] for i, name in enumerate(sent) if name == "manifest.json"]
    assert len(copies) >= 2  # periodic ones, and the one at exit
    assert all(c == ["learner.pt", "replay.arrow", "manifest.json"] for c in copies), sent
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    local = tmp_path / "ck" / run.info.run_id / "checkpoint" / "manifest.json"
    copy = client.download_artifacts(run.info.run_id, "checkpoint/manifest.json", str(tmp_path / "dl"))
    assert json.loads(Path(copy).read_text()) == json.loads(local.read_text())  # the last one, whole


@pytest.mark.slow
def test_a_copy_that_fails_is_a_warning_and_the_next_checkpoint_tries_again(
    tracking_uri, tmp_path, monkeypatch, capsys
):
    log_artifact = MlflowTracker.log_artifact
    refused = []

    def flaky(self, path, artifact_path=None):
        if artifact_path == "checkpoint" and not refused:  # the server refuses the first copy
            refused.append(path)
            raise ConnectionError("tracking server unreachable")
        log_artifact(self, path, artifact_path)

    monkeypatch.setattr(MlflowTracker, "log_artifact", flaky)
    assert train(tracking_uri, tmp_path / "ck") == 0
    err = capsys.readouterr().err
    assert "copying the checkpoint at env step" in err and "the next checkpoint tries again" in err
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["faults/checkpoint_upload_failures"] == 1
    assert "ConnectionError" in run.data.tags["adl.checkpoint_upload_error"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")} == {
        "checkpoint/learner.pt",
        "checkpoint/replay.arrow",
        "checkpoint/manifest.json",
    }  # a later checkpoint got through
