"""Bad input a careless user (or an attacker) gives the ``adl`` command: each is refused with exit 2 and
a message that says what was wrong and what is allowed, no traceback, and nothing left behind (no
MLflow run, no sweep folder), before Ray or a run is started. (Issue #23's re-probe: these 18 gave
tracebacks, a hang, a run opened for nothing, or were silently ignored.)"""

from __future__ import annotations

import socket
import struct
import zlib
from pathlib import Path

import pytest

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/qlearn_frozenlake.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bomb_yaml(path: Path) -> Path:
    """Twelve levels of ten aliases each: 10^12 values once expanded, 2 KB on disk."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    path.write_text("\n".join(lines) + "\nseed: 0\n")
    return path


def _png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width × height (a decompression bomb's trick)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 9))
        + chunk(b"IEND", b"")
    )


def _images(tmp: Path) -> str:
    folder = tmp / "faces"
    folder.mkdir()
    _png(folder / "a.png", 8, 8)
    _png(folder / "bomb.png", 100_000, 100_000)  # 10^10 pixels: 10 GB once decoded
    return str(folder)


CASES = {
    # name: (argv, what the message says)
    "binary config": (["train", "qlearn", "--config", "{tmp}/bin.yaml"], "not a UTF-8 text file"),
    "alias bomb config (train)": (["train", "qlearn", "--config", "{tmp}/bomb.yaml"], "expands to more than"),
    "alias bomb sweep": (["sweep", "--config", "{tmp}/bomb.yaml"], "expands to more than"),
    "alias bomb in --set": (
        [
            "train",
            "qlearn",
            "--set",
            "episodes=[&a [1,1,1,1,1,1,1,1,1,1], " + "[" + ",".join(["*a"] * 10) + "]]",
        ],
        "episodes: expected an integer",
    ),
    "address not host:port (train)": (["train", "dqn", "--address", "notaport"], "not HOST:PORT"),
    "address not host:port (sweep)": (["sweep", "--config", SWEEP, "--address", "notaport"], "not HOST:PORT"),
    "address a URL (train)": (["train", "dqn", "--address", "http://127.0.0.1:9"], "that is a URL"),
    "address a URL (sweep)": (
        ["sweep", "--config", SWEEP, "--address", "http://127.0.0.1:9"],
        "that is a URL",
    ),
    "address nobody answers (train)": (["train", "dqn", "--address", "127.0.0.1:{port}"], "nothing answers"),
    "address nobody answers (sweep)": (
        ["sweep", "--config", SWEEP, "--address", "127.0.0.1:{port}"],
        "nothing answers",
    ),
    "tracking uri unknown scheme": (
        ["train", "qlearn", "--tracking-uri", "notascheme://x"],
        "unknown scheme",
    ),
    "tracking uri folder store": (["train", "qlearn", "--tracking-uri", "file:///proc/x"], "a folder store"),
    "negative seed": (["train", "qlearn", "--seed", "-1"], "seed: -1 is out of range; allowed: >= 0"),
    "storage_path unknown scheme": (
        ["sweep", "--config", SWEEP, "--set", "storage_path=bogus://x/y"],
        "Unrecognized filesystem type",
    ),
    "a replay larger than the host": (
        ["train", "dqn", "--set", "replay.capacity=1000000000000"],
        "take 71.48 TiB when full",
    ),
    "register with no network": (["train", "qlearn", "--register", "q"], "qlearn learns none"),
    "decompression bomb image": (
        [
            "train",
            "gan",
            "--config",
            str(REPO / "configs/gan/images_dcgan.yaml"),
            "--set",
            "data.path={images}",
        ],
        "bomb.png",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_cleanly_with_nothing_left_behind(case, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    _bomb_yaml(tmp_path / "bomb.yaml")
    fill = {"tmp": str(tmp_path), "port": str(_free_port())}
    if "{images}" in " ".join(CASES[case][0]):
        fill["images"] = _images(tmp_path)
    argv = [a.format(**fill) for a in CASES[case][0]]
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("adl: error: "), err[-2000:]
    assert CASES[case][1] in err, err
    assert not (tmp_path / ".adl").exists()  # no sweep state, no checkpoint folder
    if store.exists():  # no run was opened for it
        client = MlflowClient(f"sqlite:///{store}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_cpu_count_below_one_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["sweep", "--config", SWEEP, "--num-cpus", "-3"])
    assert refused.value.code == 2
    assert "argument --num-cpus: -3 is not allowed; at least 1" in capsys.readouterr().err
