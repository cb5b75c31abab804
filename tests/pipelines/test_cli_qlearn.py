"""``adl train qlearn`` end to end on a real sqlite MLflow store, and its bad-input paths."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]
FROZEN = str(REPO / "configs/qlearn/frozenlake.yaml")


def test_cli_run_writes_a_real_mlflow_run(tracking_uri, tmp_path, capsys):
    code = main(
        [
            "train",
            "qlearn",
            "--config",
            FROZEN,
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            "t",
            "--set",
            "episodes=300",
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "run id" in out and "mlflow ui --host 127.0.0.1" in out
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("t")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["env.id"] == "FrozenLake-v1" and run.data.params["episodes"] == "300"
    assert run.data.tags["adl.family"] == "qlearn" and run.data.tags["adl.config"] == "frozenlake"
    history = client.get_metric_history(run.info.run_id, "eval/max_abs_q_error")
    assert [m.step for m in history] == [50, 100, 150, 200, 250, 300]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.yaml",
        "q_table.npy",
        "q_table.parquet",
        "learning_curves.png",
        "policy_value.png",
        "checkpoint.pt",
    } <= names
    q = np.load(client.download_artifacts(run.info.run_id, "q_table.npy", str(tmp_path)), allow_pickle=False)
    assert q.shape == (16, 4)
    # The saved config reproduces the run's config.
    saved = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    assert (
        main(
            [
                "train",
                "qlearn",
                "--config",
                saved,
                "--tracking-uri",
                tracking_uri,
                "--experiment",
                "t",
                "--no-progress",
            ]
        )
        == 0
    )
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert runs[1].data.params == runs[0].data.params


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--set", "episodez=3"], "unknown key 'episodez'. Did you mean 'episodes'?"),
        (["--set", "gamma=high"], "gamma: expected a number, got 'high'"),
        (["--set", "gamma=1.5"], "gamma: 1.5 is out of range"),
        (["--set", "episodes"], "expected KEY=VALUE"),
        (["--set", "env.id=FrozenLake-v9"], "no environment 'FrozenLake-v9'. Did you mean 'FrozenLake-v1'"),
        (
            ["--set", "env.id=Pendulum-v1", "--set", "env.kwargs={}"],
            "Box action space; tabular Q-learning needs discrete",
        ),
        (
            ["--set", "env.id=CartPole-v1", "--set", "env.kwargs={}"],
            "Box observation space; tabular Q-learning needs",
        ),
        (["--set", "env.kwargs={colour: red}"], "env.kwargs for 'FrozenLake-v1' were refused by gymnasium"),
        # Issue #15, item 9: a constructor's own error (KeyError '9x9'), and a number that is no number.
        (
            ["--set", "env.kwargs={map_name: 9x9}"],
            "env.kwargs for 'FrozenLake-v1' were refused by gymnasium (KeyError: '9x9')",
        ),
        (["--set", "q_init=.inf"], "q_init: inf is not allowed; allowed: a finite number"),
        (["--set", "gamma=.nan"], "gamma: nan is not allowed"),
        (["--config", "/nonexistent.yaml"], "config file not found: /nonexistent.yaml"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, needle, tracking_uri, tmp_path, capsys):
    argv = ["train", "qlearn", "--tracking-uri", tracking_uri, "--no-progress"]
    argv += args if "--config" in args else ["--config", FROZEN, *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # refused before the store was opened: no run, no file


def test_unreachable_tracking_server_fails_fast():
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "train",
            "qlearn",
            "--config",
            FROZEN,
            "--tracking-uri",
            "http://127.0.0.1:9",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.time() - t0 < 20


def test_help_lists_families_and_shipped_configs():
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "train", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "qlearn" in proc.stdout and "configs/qlearn/frozenlake.yaml" in proc.stdout
