"""No window between the check of a sweep's state and its use (issue #23, item 1): a resume verifies the
signed files, then Ray starts, then Tune restores. Here, in that window (a hook on Ray's start, where
the re-probe's blind ``sleep 2.5; cp`` landed), ``tuner.pkl`` is replaced by a payload and a newer
experiment state is dropped beside it. Tune reads what adl checked: the payload never runs, the
resume goes on."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import pipelines.distributed.ray_runtime as ray_runtime
from pipelines.cli.main import main
from pipelines.signing import signed

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


class Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.slow
@pytest.mark.ray
def test_state_swapped_after_the_check_is_never_what_tune_reads(tracking_uri, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    sets = ["name=race", "scheduler.kind=fifo", "search_space={alpha.start: {grid: [0.5]}}"]
    sets += ["overrides={episodes: 100, eval_every: 100}"]
    assert main([*argv, "--config", SWEEP, *(a for s in sets for a in ("--set", s))]) == 0
    folder = tmp_path / ".adl/sweeps/race"
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(Touch(marker))
    real_init, swapped = ray_runtime.init_ray, []

    def swap_then_start(*args, **kwargs):  # after adl checked the state, before Tune reads it
        swapped.append((folder / "adl_signature.json").is_file())
        (folder / "tuner.pkl").write_bytes(crafted)
        (folder / "experiment_state-2099-01-01_00-00-00.json").write_bytes(crafted)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray_runtime, "init_ray", swap_then_start)
    capsys.readouterr()
    assert main([*argv, "--resume", "race"]) == 0, capsys.readouterr().err[-3000:]
    assert swapped == [True]  # the swap happened, after the check (Tune rewrites tuner.pkl as it goes on)
    assert not marker.exists()  # and Tune never unpickled it
    client = MlflowClient(tracking_uri)
    (parent,) = [
        r for r in client.search_runs([client.get_experiment_by_name("adl-qlearn").experiment_id])
        if r.data.tags.get("adl.kind") == "sweep"
    ]  # fmt: skip
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.ray
def test_trust_state_lists_each_file_and_what_changed_and_signs_only_when_confirmed(
    tracking_uri, tmp_path, monkeypatch, capsys
):
    """A sweep whose signature went stale (as when its driver died while Tune uploaded its state): a
    resume is refused; ``--trust-state`` names every file it would sign and what changed, and with
    no terminal to ask on it signs nothing unless told ``--yes``."""
    import json

    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--tracking-uri", tracking_uri, "--num-cpus", "2"]
    sets = ["name=stale", "scheduler.kind=fifo", "search_space={alpha.start: {grid: [0.5]}}"]
    sets += ["overrides={episodes: 100, eval_every: 100}"]
    assert main([*argv, "--config", SWEEP, *(a for s in sets for a in ("--set", s))]) == 0
    folder = tmp_path / ".adl/sweeps/stale"
    signature = json.loads((folder / "adl_signature.json").read_text())
    state = next(n for n in signature["files"] if n.startswith("experiment_state"))
    signature["files"].pop(state)  # the last save's upload never signed: its file is "new"
    (folder / "adl_signature.json").write_text(json.dumps(signed(signature)))
    capsys.readouterr()
    assert main([*argv, "--resume", "stale"]) == 2
    assert f"{state} is not listed" in capsys.readouterr().err
    assert main([*argv, "--resume", "stale", "--yes"]) == 2  # --yes alone confirms nothing
    assert "--yes confirms --trust-state" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main([*argv, "--resume", "stale", "--trust-state"]) == 2
    err = capsys.readouterr().err
    rows = [line.split() for line in err.splitlines() if line.startswith("  ")]
    assert ["added", "after", "adl", "signed", f"{folder}/{state}"] in rows
    assert ["unchanged", f"{folder}/tuner.pkl"] in rows and ["unchanged", f"{folder}/adl_sweep.json"] in rows
    assert "confirm signing the files above with --yes" in err
    assert main([*argv, "--resume", "stale"]) == 2  # nothing was signed
    capsys.readouterr()
    assert main([*argv, "--resume", "stale", "--trust-state", "--yes"]) == 0
    assert "(1 not as adl signed them)" in capsys.readouterr().err
