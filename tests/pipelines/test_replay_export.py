"""``adl replay export`` and its bad input: a clear exit 2, and nothing left behind (issue #15, item 9)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from components.replay.batch import Transitions
from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.snapshot import write_replay
from pipelines.cli.main import main


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint folder holding a small replay snapshot (what ``--checkpoint-dir`` points at)."""
    ckpt = tmp_path / "run" / "checkpoint"
    ckpt.mkdir(parents=True)
    buf = ReplayBuffer(ReplayConfig(capacity=64), (4,), np.dtype(np.float32))
    b = 40
    buf.add(
        Transitions(
            obs=np.ones((b, 4), np.float32),
            action=np.zeros(b, np.int64),
            reward=np.ones(b, np.float32),
            next_obs=np.ones((b, 4), np.float32),
            done=np.zeros(b, bool),
            n=np.ones(b, np.uint8),
            priority=np.ones(b, np.float32),
            collector=np.zeros(b, np.int16),
            episode=np.zeros(b, np.int64),
            step=np.arange(b, dtype=np.int32),
            truncated=np.zeros(b, bool),
        )
    )
    write_replay(buf, ckpt / "replay.arrow")
    (ckpt / "manifest.json").write_text("{}")
    return ckpt


def _export(ckpt, out) -> int:
    return main(["replay", "export", "RUN", "--checkpoint-dir", str(ckpt), "--out", str(out)])


def test_a_good_export_then_every_bad_target_and_snapshot_exits_2_leaving_nothing(
    checkpoint, tmp_path, capsys
):
    assert _export(checkpoint, tmp_path / "out" / "replay.parquet") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["replay.parquet"]

    folder = tmp_path / "existing"
    folder.mkdir()
    assert _export(checkpoint, folder) == 2
    err = capsys.readouterr().err
    assert f"--out {folder}: is a folder; give the Parquet file to write" in err and "Traceback" not in err
    assert list(folder.iterdir()) == [] and not (tmp_path / "existing.tmp").exists()  # no .tmp left

    assert _export(checkpoint, "/proc/x.parquet") == 2
    err = capsys.readouterr().err
    assert "--out: cannot write in /proc" in err and "Traceback" not in err

    table = ipc.open_file(pa.BufferReader((checkpoint / "replay.arrow").read_bytes())).read_all()
    table = table.drop_columns(["tree_leaf"])
    with pa.OSFile(str(checkpoint / "replay.arrow"), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    target = tmp_path / "out2" / "replay.parquet"
    assert _export(checkpoint, target) == 2
    err = capsys.readouterr().err
    assert "replay.arrow: column 'tree_leaf' is missing" in err and "Traceback" not in err
    assert not (tmp_path / "out2").exists()  # refused before anything was made: no table, no .tmp
