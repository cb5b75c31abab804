"""Every DQN checkpoint is copied to the run's artifacts as it is written, its manifest last, so that it
outlives the machine that wrote it; a copy that fails costs the copy, never the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.tracking.mlflow_tracker import MlflowTracker
from tests.pipelines.dqn_cli import CARTPOLE, SMALL, as_sets

SETS = [*SMALL, "checkpoint.every_s=0.3", "max_env_steps=3000"]


def train(tracking_uri: str, ck: Path) -> int:
    argv = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    return main([*argv, *as_sets([*SETS, f"checkpoint.dir={ck}"])])


@pytest.mark.slow
def test_each_checkpoint_is_copied_as_it_is_written_manifest_last(tracking_uri, tmp_path, monkeypatch):
    sent: list[str] = []
    log_artifact = MlflowTracker.log_artifact

    def recording(self, path, artifact_path=None):
        if artifact_path in ("checkpoint", "checkpoint.alt"):
            sent.append(f"{artifact_path}/{Path(path).name}")
        log_artifact(self, path, artifact_path)

    monkeypatch.setattr(MlflowTracker, "log_artifact", recording)
    assert train(tracking_uri, tmp_path / "ck") == 0
    copies = [sent[i - 2 : i + 1] for i, name in enumerate(sent) if name.endswith("/manifest.json")]
    assert len(copies) >= 2  # periodic ones, and the one at exit
    for n, copy in enumerate(copies):  # into the two slots in turn, each copy's manifest last
        slot = ("checkpoint", "checkpoint.alt")[n % 2]
        assert copy == [f"{slot}/learner.pt", f"{slot}/replay.arrow", f"{slot}/manifest.json"], sent
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    local = tmp_path / "ck" / run.info.run_id / "checkpoint" / "manifest.json"
    last = copies[-1][-1]
    copy = client.download_artifacts(run.info.run_id, last, str(tmp_path / "dl"))
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
    got = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    got |= {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint.alt")}
    assert {"checkpoint.alt/manifest.json", "checkpoint/manifest.json"} & got  # a later one got through


@pytest.mark.slow
def test_a_copy_cut_off_by_the_hosts_death_leaves_the_other_whole_and_a_resume_takes_it(
    tracking_uri, tmp_path, capsys
):
    """The newest copy's learner.pt was replaced but not its manifest (the host died between the two);
    the local folder is gone (another machine). The resume takes the other slot's whole copy."""
    import shutil

    assert train(tracking_uri, tmp_path / "ck") == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    run_id = run.info.run_id
    manifests = {}
    for slot in ("checkpoint", "checkpoint.alt"):
        m = client.download_artifacts(run_id, f"{slot}/manifest.json", str(tmp_path / "dl" / slot))
        manifests[slot] = json.loads(Path(m).read_text())
    written = {slot: m["written_at"] for slot, m in manifests.items()}
    newest = max(written, key=written.get)
    older = "checkpoint" if newest == "checkpoint.alt" else "checkpoint.alt"
    cut = tmp_path / "cut" / "learner.pt"
    cut.parent.mkdir()
    cut.write_bytes(b"half of a learner")  # what a copy cut off mid-way leaves
    client.log_artifact(run_id, str(cut), newest)
    shutil.rmtree(tmp_path / "ck")  # the machine that wrote it is gone
    capsys.readouterr()
    argv = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    sets = [*SETS[:-1], "max_env_steps=4000", f"checkpoint.dir={tmp_path / 'ck2'}"]
    assert main([*argv, "--resume", run_id, *(a for kv in sets for a in ("--set", kv))]) == 0
    err = capsys.readouterr().err
    assert f"skipped a copy that is not whole ({newest}/:" in err and "downloaded run" in err
    resumed = client.get_metric_history(run_id, "resume/learner_steps")
    assert len(resumed) == 1 and resumed[0].value > 0
    assert resumed[0].step == manifests[older]["loop"]["env_steps"]  # from the older slot's checkpoint
