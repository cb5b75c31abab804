"""A run written under an older key name still resumes: ``learner.num_threads`` became
``learner.threads`` (the device section every trainer shares). A checkpoint's manifest stores the
config it was written with; a resume reads it back under today's names, while a user's own
``--set learner.num_threads`` is refused with the new name."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from pipelines.dqn.checkpoint import stored_identity
from tests.pipelines.dqn_cli import CARTPOLE, SMALL, as_sets


def test_a_stored_config_with_the_old_threads_key_resumes(tracking_uri, tmp_path, capsys):
    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    sets = [*SMALL, f"checkpoint.dir={tmp_path / 'ckpt'}"]
    assert main([*base, *as_sets([*sets, "max_env_steps=1500"])]) == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    run_id = run.info.run_id
    ckpt = tmp_path / "ckpt" / run_id / "checkpoint"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert "learner.threads" not in manifest["config"]  # where it runs is not part of what it learns
    # The config as an older adl stored it: the old name, a value this run does not use.
    manifest["config"]["learner.num_threads"] = 2
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    steps = manifest["loop"]["env_steps"]

    # The user's own flags say the old name: exit 2 naming the new one, the run left as it was.
    capsys.readouterr()
    assert main([*base, "--resume", run_id, *as_sets([*sets, "learner.num_threads=2"])]) == 2
    err = capsys.readouterr().err
    assert "learner.num_threads was renamed learner.threads" in err and "Traceback" not in err
    assert client.get_run(run_id).info.status == "FINISHED"

    # With today's flags it resumes from the stored config and goes on from its counters.
    assert (
        main([*base, "--resume", run_id, *as_sets([*sets, "max_env_steps=2500", "learner.threads=2"])]) == 0
    )
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and int(run.data.tags["adl.result.final_env_steps"]) >= 2500
    resumed = json.loads((ckpt / "manifest.json").read_text())
    assert resumed["loop"]["env_steps"] > steps and "learner.num_threads" not in resumed["config"]


def test_a_stored_key_is_renamed_and_the_maths_still_counts():
    stored = {"learner.num_threads": 4, "learner.lr": 0.002, "learner.device": "cuda"}
    assert stored_identity(stored) == {"learner.lr": 0.002}  # threads and device: a resume may change them
    assert stored_identity({"learner.n_step": 3}) == {"learner.n_step": 3}
