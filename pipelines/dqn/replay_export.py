"""``adl replay export RUN_ID --out FILE.parquet``: a run's checkpointed replay as a plain table.

The checkpoint folder comes from the run's ``adl.checkpoint_dir`` tag (or ``--checkpoint-dir``); the
replay snapshot in it is rewritten as Parquet with the columns obs, action, reward, next_obs, done,
truncated, n, priority, collector, episode, step (one row per stored transition, in ring-slot order),
which pandas, polars and duckdb read directly. An Atari replay (frames stored once) exports the same
columns: its stacks are rebuilt from the frames. ``--out`` is checked (not a folder, writable) before
anything is read, the snapshot's metadata and schema before anything is written, and a failure
leaves no file behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

from components.config import ConfigError
from components.replay.snapshot import SnapshotError, export_parquet
from pipelines.dqn.checkpoint import find_checkpoint
from pipelines.tracking import run_info
from pipelines.writable import check_writable


def check_out(out: str | Path) -> Path:
    """The Parquet file to write: not a folder, in a folder that takes files (checked first)."""
    path = Path(out).expanduser().absolute()
    if path.is_dir():
        raise ConfigError(
            f"--out {out}: is a folder; give the Parquet file to write, e.g. {path / 'replay.parquet'}"
        )
    check_writable(path.parent, "--out")
    return path


def export_run_replay(
    run_id: str, out: str | Path, tracking_uri: str | None = None, checkpoint_dir: str | Path | None = None
) -> int:
    out = check_out(out)
    if checkpoint_dir is None:
        _, _, tags = run_info(tracking_uri, run_id)
        if "adl.checkpoint_dir" not in tags:
            raise ConfigError(f"run {run_id} has no adl.checkpoint_dir tag; pass --checkpoint-dir")
        checkpoint_dir = tags["adl.checkpoint_dir"]
    snapshot = find_checkpoint(Path(checkpoint_dir)) / "replay.arrow"
    if not snapshot.is_file():
        raise ConfigError(f"checkpoint {snapshot.parent} holds no replay (checkpoint.replay was false)")
    try:
        rows = export_parquet(snapshot, out)  # to OUT.tmp, renamed; removed if anything fails
    except SnapshotError as e:
        raise ConfigError(str(e)) from None
    except OSError as e:  # the disk filled up, the folder went away
        raise ConfigError(f"--out {out}: cannot be written ({e.strerror or e})") from None
    print(f"adl: wrote {rows} transitions of run {run_id} to {out}", file=sys.stderr)
    return 0
