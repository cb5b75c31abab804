"""A checkpoint's values checked as input (issue #23, item 4): NaN weights or optimizer moments, NaN
observations in the replay, counters no run reaches or that the manifest contradicts, an optimizer
learning rate that is not the config's, a manifest nested 200,000 deep. Each file is resealed (sizes
and CRCs recomputed), so only the value checks can tell; each resume is exit 2 naming the file and the
field, and the run stays as it was (FINISHED)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main
from tests.pipelines import dqn_cli
from tests.pipelines.dqn_cli import CARTPOLE
from tests.pipelines.tamper import Touch, reseal, rewrite_replay, with_column

SMALL = [*dqn_cli.SMALL, "max_env_steps=1500"]


def _learner(pt: Path, change) -> None:
    payload = torch.load(pt, map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, pt)


def _nan_weight(p: dict) -> None:
    first = next(iter(p["learner"]["online"]))
    p["learner"]["online"][first][0] = float("nan")


def _nan_moment(p: dict) -> None:
    state = next(iter(p["learner"]["optimizer"]["state"].values()))
    state["exp_avg"].view(-1)[0] = float("inf")


def _lr(p: dict) -> None:
    for g in p["learner"]["optimizer"]["param_groups"]:
        g["lr"] = 1e9


def _steps(n: int):
    def change(p: dict) -> None:
        p["loop"]["env_steps"] = n

    return change


def _nan_obs(t, m):
    import pyarrow as pa

    obs = np.stack(t["obs"].to_numpy(zero_copy_only=False)).astype(np.float32)
    obs[5, 2] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(obs.reshape(-1)), obs.shape[1])
    return t.set_column(t.schema.get_field_index("obs"), "obs", col), m


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One short local run with its checkpoint (and its files as written)."""
    tmp = tmp_path_factory.mktemp("ckpt-values")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", uri, "--local", "--no-progress"]
    sets = dqn_cli.as_sets([*SMALL, f"checkpoint.dir={tmp / 'ckpt'}"])
    assert main([*base, *sets]) == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    ckpt = tmp / "ckpt" / run.info.run_id / "checkpoint"
    return client, run.info.run_id, ckpt, {p.name: p.read_bytes() for p in ckpt.iterdir()}, base + sets


CASES = {
    "a NaN weight": ("learner.pt", lambda d: _learner(d / "learner.pt", _nan_weight), "learner.online."),
    "an inf Adam moment": (
        "learner.pt",
        lambda d: _learner(d / "learner.pt", _nan_moment),
        "learner.optimizer.state.",
    ),
    "an optimizer lr of 1e9": (
        "learner.pt",
        lambda d: _learner(d / "learner.pt", _lr),
        "optimizer lr is 1000000000.0",
    ),
    "env steps 10**30": (
        "learner.pt",
        lambda d: _learner(d / "learner.pt", _steps(10**30)),
        "'loop.env_steps' is 1",
    ),
    "env steps 2**62": (
        "learner.pt",
        lambda d: _learner(d / "learner.pt", _steps(2**62)),
        "'loop.env_steps' is 46",
    ),
    "a NaN observation": (
        "replay.arrow",
        lambda d: rewrite_replay(d / "replay.arrow", _nan_obs),
        "'obs' holds nan at row 5",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_checkpoint_value_no_run_writes_is_refused_and_the_run_is_left_as_it_was(case, finished, capsys):
    client, run_id, ckpt, saved, argv = finished
    name, tamper, needle = CASES[case]
    try:
        tamper(ckpt)
        manifest = json.loads(saved["manifest.json"])
        if "loop" in needle:  # the manifest keeps its own copy of the counters: make them agree
            manifest["loop"] = torch.load(ckpt / "learner.pt", weights_only=True)["loop"]
        reseal(ckpt, manifest)
        capsys.readouterr()
        assert main([*argv, "--resume", run_id]) == 2
        err = capsys.readouterr().err
        assert needle in err and str(ckpt / name) in err and "Traceback" not in err, err[-2000:]
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        for f, data in saved.items():
            (ckpt / f).write_bytes(data)


@pytest.mark.slow
def test_counters_that_the_manifest_contradicts_and_a_manifest_nested_too_deep(finished, capsys):
    client, run_id, ckpt, saved, argv = finished
    try:
        manifest = json.loads(saved["manifest.json"])
        manifest["loop"]["env_steps"] += 1000  # the learner file says otherwise
        (ckpt / "manifest.json").write_text(json.dumps(manifest))
        assert main([*argv, "--resume", run_id]) == 2
        assert (
            "counters in manifest.json (field 'loop') differ from those in learner.pt"
            in capsys.readouterr().err
        )
        (ckpt / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
        assert main([*argv, "--resume", run_id]) == 2
        err = capsys.readouterr().err
        assert "nested too deep" in err and "Traceback" not in err
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        for f, data in saved.items():
            (ckpt / f).write_bytes(data)
    assert main([*argv, "--resume", run_id]) == 0  # the untouched checkpoint still resumes


def test_a_checkpoint_is_checked_as_input_and_a_bad_one_leaves_the_run_as_it_was(
    tracking_uri, tmp_path, capsys
):
    """Issue #15, item 8: files whose CRC matches but whose contents are wrong, a learner.pt that
    weights_only refuses, a replay left out of the manifest, a manifest missing fields: each is
    exit 2 naming the file and the field, before the run is reopened (it stays FINISHED)."""
    import numpy as np
    import pyarrow as pa

    base = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--local", "--no-progress"]
    sets = dqn_cli.as_sets([*SMALL, f"checkpoint.dir={tmp_path / 'ckpt'}"])
    assert main([*base, *sets]) == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    run_id = run.info.run_id
    ckpt = tmp_path / "ckpt" / run_id / "checkpoint"
    saved = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    manifest = json.loads(saved["manifest.json"])
    replay, pt, marker = ckpt / "replay.arrow", ckpt / "learner.pt", tmp_path / "pwned"
    actions = np.asarray(pa.ipc.open_file(pa.BufferReader(replay.read_bytes())).read_all()["action"])

    def padded_obs(t, m):
        obs = np.stack(t["obs"].to_numpy(zero_copy_only=False))
        wide = np.concatenate([obs, obs[:, :1]], axis=1).astype(np.float32)  # width 5, metadata says 4
        col = pa.FixedSizeListArray.from_arrays(pa.array(wide.reshape(-1)), 5)
        return t.set_column(t.schema.get_field_index("obs"), "obs", col), m

    cases = [
        (
            lambda: rewrite_replay(replay, lambda t, m: (t.drop_columns(["priority"]), m)),
            "column 'priority' is missing",
        ),
        (
            lambda: rewrite_replay(replay, padded_obs),
            "column 'obs' is fixed_size_list<item: float>[5]; expected",
        ),
        (
            lambda: rewrite_replay(
                replay, lambda t, m: (t, {**m, "size": m["size"] - 100, "cursor": m["size"] - 100})
            ),
            "rows; its metadata says",
        ),
        (
            lambda: rewrite_replay(
                replay, with_column("action", np.where(np.arange(len(actions)) == 3, 7, actions))
            ),
            "column 'action' holds 7 at row 3; allowed: 0 to 1",
        ),
        (
            lambda: torch.save({"learner": Touch(marker)}, pt),
            f"checkpoint file {pt} cannot be read (UnpicklingError",
        ),
    ]
    for tamper, needle in cases:
        tamper()
        reseal(ckpt, json.loads(saved["manifest.json"]))
        capsys.readouterr()
        assert main([*base, "--resume", run_id, *sets]) == 2, needle
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (needle, err[-2000:])
        assert str(replay if "learner" not in needle else pt) in err  # the file is named
        assert client.get_run(run_id).info.status == "FINISHED"  # not reopened, not flipped to FAILED
        for name, data in saved.items():
            (ckpt / name).write_bytes(data)

    # The manifest itself: a replay it does not list, a field it lacks, a field of the wrong type.
    for change, needle in [
        (lambda m: m["files"].pop("replay.arrow"), f"checkpoint file {replay} is not listed in"),
        (lambda m: m.pop("network"), "field 'network' is None; expected a dict"),
        (
            lambda m: m.update(files=list(m["files"])),
            "field 'files' is ['learner.pt', 'replay.arrow']; expected a dict",
        ),
    ]:
        broken = json.loads(saved["manifest.json"])
        change(broken)
        (ckpt / "manifest.json").write_text(json.dumps(broken))
        assert main([*base, "--resume", run_id, *sets]) == 2, needle
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (needle, err[-2000:])
        assert client.get_run(run_id).info.status == "FINISHED"
    assert not marker.exists()
    (ckpt / "manifest.json").write_bytes(saved["manifest.json"])
    assert main([*base, "--resume", run_id, *sets]) == 0  # the untouched checkpoint still resumes
    assert manifest["replay"]["size"] == len(actions)
