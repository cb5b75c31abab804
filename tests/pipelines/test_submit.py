"""``adl submit`` / ``adl jobs`` without a cluster: what is built, and bad input refused with exit 2."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from components.config import ConfigError
from pipelines.cli.main import build_parser, main
from pipelines.distributed.preflight import package_limit, working_dir_size
from pipelines.distributed.submit import (
    DEFAULT_EXCLUDES,
    build_submission,
    entrypoint_for,
)
from pipelines.tracking.uri import check_cluster_tracking_uri

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


def test_command_after_double_dash_reaches_the_entrypoint_as_uploaded_code():
    args = build_parser().parse_args(
        ["submit", "--follow", "--", "adl", "train", "dqn", "--config", "configs/dqn/cartpole.yaml"]
    )
    assert args.follow
    expected = "python -m pipelines.cli train dqn --config configs/dqn/cartpole.yaml"
    assert entrypoint_for(args.job_command) == expected
    assert entrypoint_for(["python", "x.py", "a b"]) == "python x.py 'a b'"
    with pytest.raises(ConfigError, match="needs a command after --"):
        entrypoint_for(["--"])


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.org",
        "sqlite:////shared/mlflow.db",
        "file:///shared/mlruns",
    ],
)
def test_absolute_tracking_uris_are_accepted(uri):
    assert check_cluster_tracking_uri(uri) == uri


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "sqlite://", "mlruns", "/abs/mlruns", "file:mlruns"])
def test_relative_tracking_uris_are_refused(uri):
    with pytest.raises(ConfigError, match="temporary copy of the working directory"):
        check_cluster_tracking_uri(uri)


def test_submission_excludes_local_stores_and_carries_the_tracking_uri(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "code.py").write_text("x = 1\n")
    for junk in (".git/objects/blob", ".venv/lib/big.so", "mlruns/0/meta.yaml", "data/train.bin"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_bytes(b"0" * 10_000)
    (tmp_path / "mlflow.db").write_bytes(b"0" * 10_000)
    assert working_dir_size(tmp_path, list(DEFAULT_EXCLUDES)) == len("x = 1\n")
    assert working_dir_size(tmp_path, []) > 50_000

    sub = build_submission(
        ["--", "adl", "train", "qlearn"],
        working_dir=tmp_path,
        tracking_uri="http://127.0.0.1:5000",
        env={"A": "1"},
        submission_id="my-id",
        num_cpus=1,
        resources={"worker_node": 1},
    )
    assert sub.submission_id == "my-id"
    assert sub.entrypoint == "python -m pipelines.cli train qlearn"
    assert sub.runtime_env["working_dir"] == str(tmp_path.resolve())
    assert {".git", ".venv", "mlflow.db", "mlruns/", "data/"} <= set(sub.runtime_env["excludes"])
    assert sub.runtime_env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert sub.runtime_env["env_vars"]["A"] == "1"
    assert sub.entrypoint_num_cpus == 1 and sub.entrypoint_resources == {"worker_node": 1}
    assert build_submission(
        ["adl", "sweep"], working_dir=tmp_path, tracking_uri="http://h:1"
    ).submission_id.startswith("adl-sweep-")


def test_unreachable_address_exits_2_within_seconds(capsys):
    addr = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.time()
    code = main(
        [
            "submit",
            "--address",
            addr,
            "--working-dir",
            str(REPO),
            "--tracking-uri",
            "http://127.0.0.1:1",
            "--",
            "adl",
            "train",
            "qlearn",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and time.time() - t0 < 15
    assert f"cannot reach the Ray Jobs server at {addr}" in err and "ssh -N -L 8265" in err
    assert "Traceback" not in err
    assert main(["jobs", "--address", addr, "list"]) == 2


def test_relative_sqlite_tracking_uri_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(
        [
            "submit",
            "--working-dir",
            str(REPO),
            "--tracking-uri",
            "sqlite:///mlflow.db",
            "--",
            "adl",
            "train",
            "qlearn",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "tracking URI sqlite:///mlflow.db: relative sqlite path" in err and "server URL" in err
    # the same URI inside the submitted command is refused too
    code = main(
        [
            "submit",
            "--working-dir",
            str(REPO),
            "--tracking-uri",
            "http://127.0.0.1:1",
            "--",
            "adl",
            "train",
            "qlearn",
            "--tracking-uri",
            "sqlite:///rel.db",
        ]
    )
    assert code == 2 and "sqlite:///rel.db: relative sqlite path" in capsys.readouterr().err


def test_working_dir_over_rays_package_limit_exits_2(tmp_path, capsys):
    big = tmp_path / "weights.bin"
    with open(big, "wb") as f:  # sparse: costs no disk, but Ray would upload every byte
        f.truncate(package_limit() + 1)
    (tmp_path / "small.py").write_text("pass\n")
    code = main(
        [
            "submit",
            "--address",
            f"http://127.0.0.1:{_closed_port()}",
            "--working-dir",
            str(tmp_path),
            "--tracking-uri",
            "http://127.0.0.1:5000",
            "--",
            "adl",
            "train",
            "qlearn",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        f"working directory {tmp_path}" in err
        and "over Ray's 512 MiB package limit" in err
        and "--exclude" in err
    )
    # ... and excluding the big file makes the working dir acceptable (the address is what fails next)
    code = main(
        [
            "submit",
            "--address",
            f"http://127.0.0.1:{_closed_port()}",
            "--working-dir",
            str(tmp_path),
            "--exclude",
            "*.bin",
            "--tracking-uri",
            "http://127.0.0.1:5000",
            "--",
            "adl",
            "train",
            "qlearn",
        ]
    )
    assert code == 2 and "cannot reach the Ray Jobs server" in capsys.readouterr().err


def test_bad_env_and_resources_exit_2(capsys):
    base = ["submit", "--working-dir", str(REPO), "--tracking-uri", "http://127.0.0.1:5000"]
    assert main([*base, "--env", "NOVALUE", "--", "adl", "train", "qlearn"]) == 2
    assert "--env 'NOVALUE': expected KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "--entrypoint-resources", "{worker", "--", "adl", "train", "qlearn"]) == 2
    assert "--entrypoint-resources: not JSON" in capsys.readouterr().err


def test_a_malformed_address_or_tracking_url_exits_2_without_a_traceback(capsys):
    """Issue #15, item 9: ``--address http://127.0.0.1:notaport`` was an InvalidURL traceback."""
    base = ["submit", "--working-dir", str(REPO), "--tracking-uri", "http://127.0.0.1:5000"]
    for addr in (
        "http://127.0.0.1:notaport",
        "http://127.0.0.1:99999",
        "ftp://127.0.0.1:8265",
        "http://:8265",
    ):
        assert main([*base, "--address", addr, "--", "adl", "train", "qlearn"]) == 2
        err = capsys.readouterr().err
        assert f"--address {addr!r} is not a URL like http://127.0.0.1:8265" in err and "Traceback" not in err
    assert main(["jobs", "--address", "http://127.0.0.1:notaport", "list"]) == 2
    assert "is not a URL like" in capsys.readouterr().err
    code = main(["train", "qlearn", "--tracking-uri", "http://127.0.0.1:notaport", "--set", "episodes=1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the MLflow tracking server at http://127.0.0.1:notaport" in err
    assert "Traceback" not in err


def test_default_address_comes_from_the_environment(monkeypatch):
    from pipelines.distributed.jobs import resolve_address

    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a GCS address is not a Jobs server
    assert resolve_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    assert resolve_address(None) == "http://10.0.0.1:8265"
    assert resolve_address("127.0.0.1:9999") == "http://127.0.0.1:9999"
    assert os.environ["RAY_ADDRESS"] == "http://10.0.0.1:8265"
