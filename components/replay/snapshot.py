"""Replay contents as Arrow tables: snapshots (Arrow IPC) and exports (Parquet), with no Ray in sight.

A replay of a million transitions is mostly a few dense numpy arrays, so a snapshot writes them as
Arrow columns almost without copying: observations become fixed-size lists of their own dtype
(uint8 pixels stay one byte each), one row per ring slot in slot order, and everything a ring needs
besides its arrays (cursor, counters, the largest priority, the sampling RNG's state) rides in the
schema metadata as JSON. The sum tree is stored by its leaves (p^α, exactly as the tree holds them)
and rebuilt level by level on load: every inner node is the sum of its two children in both
cases, so the restored tree is bit-for-bit the saved one.

Files are written to a temporary name and renamed, so a reader never sees half a table. The same
table minus the leaf column is what ``adl replay export`` writes as Parquet for pandas, polars or
duckdb (columns: obs, action, reward, next_obs, done, truncated, n, priority, collector, episode,
step).

A :class:`PixelReplayBuffer` (frames stored once) has a format of its own, ``adl-pixel-replay-1``
(``pixel_snapshot.py``); ``write_replay``, ``read_replay`` and ``export_parquet`` take either
replay and either file, and the export has the same columns for both.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components.replay.arrow_io import (
    Compression,
    SnapshotError,
    check_matches,
    chunks,
    fixed_list,
    frame_arrays,
    frame_state,
    load_frames,
    load_transitions,
    open_snapshot,
    read_meta,
    replay_state,
    restore_frame_state,
    restore_state,
    snapshot_meta,
    transition_arrays,
    unlist,
    write_table_atomically,
)
from components.replay.buffer import ReplayBuffer
from components.replay.factory import Replay
from components.replay.frame_storage import FrameStorage
from components.replay.pixel_buffer import PixelReplayBuffer
from components.replay.pixel_snapshot import (
    PIXEL_FORMAT,
    export_pixel_parquet,
    read_pixel_replay,
    write_pixel_replay,
)
from components.replay.snapshot_check import FORMAT, check_structure

FRAMES_FORMAT = "adl-frames-1"


# ---------------------------------------------------------------------------------------------
# ReplayBuffer


def replay_meta(buf: ReplayBuffer) -> dict[str, Any]:
    return {
        "format": FORMAT,
        **replay_state(buf),
        "obs_shape": list(buf.obs.shape[1:]),
        "obs_dtype": buf.obs.dtype.str,
        "cursor": buf.cursor,
    }


def _replay_batches(buf: ReplayBuffer, schema: pa.Schema, with_leaves: bool) -> Iterator[pa.RecordBatch]:
    for s in chunks(buf.size):
        cols = transition_arrays(buf, s, with_leaves)
        cols |= {"obs": fixed_list(buf.obs[s]), "next_obs": fixed_list(buf.next_obs[s])}
        yield pa.RecordBatch.from_arrays([cols[name] for name in schema.names], schema=schema)


def _replay_schema(buf: ReplayBuffer, with_leaves: bool, meta: dict[str, Any]) -> pa.Schema:
    width = int(np.prod(buf.obs.shape[1:], dtype=np.int64))
    obs_t = pa.list_(pa.from_numpy_dtype(buf.obs.dtype), width)
    fields = [
        ("obs", obs_t),
        ("action", pa.int64()),
        ("reward", pa.float32()),
        ("next_obs", obs_t),
        ("done", pa.bool_()),
        ("truncated", pa.bool_()),
        ("n", pa.uint8()),
        ("priority", pa.float64()),
        ("collector", pa.int16()),
        ("episode", pa.int64()),
        ("step", pa.int32()),
    ] + ([("tree_leaf", pa.float64())] if with_leaves else [])
    return pa.schema(fields, metadata={"adl": json.dumps(meta)})


def write_replay(buf: Replay, path: str | Path, compression: Compression = "none") -> dict[str, Any]:
    """Snapshot ``buf`` to an Arrow IPC file (atomically); returns the metadata plus ``bytes``."""
    if isinstance(buf, PixelReplayBuffer):
        return write_pixel_replay(buf, Path(path), compression)
    meta = replay_meta(buf)
    schema = _replay_schema(buf, True, meta)
    size = write_table_atomically(Path(path), schema, _replay_batches(buf, schema, True), compression)
    return meta | {"bytes": size}


def read_replay_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a snapshot of either replay."""
    reader = open_snapshot(Path(path))
    fmt = snapshot_meta(reader).get("format")
    return read_meta(reader, Path(path), PIXEL_FORMAT if fmt == PIXEL_FORMAT else FORMAT)


def read_replay(buf: Replay, path: str | Path) -> dict[str, Any]:
    """Restore a snapshot into ``buf`` (built from the same replay config); returns its metadata.

    Raises:
        SnapshotError: the file is missing or not whole, is of the other replay's format, or its
            capacity, kind, α, observation shape or dtype differ from ``buf``'s (the message names which).
    """
    if isinstance(buf, PixelReplayBuffer):
        return read_pixel_replay(buf, Path(path))
    path = Path(path)
    reader = open_snapshot(path)
    meta = read_meta(reader, path, FORMAT)
    check_structure(reader, path)  # every key, type and column there, before any is used
    check_matches(path, meta, replay_meta(buf), ("capacity", "kind", "alpha", "obs_shape", "obs_dtype"))
    shape, dtype = tuple(meta["obs_shape"]), np.dtype(meta["obs_dtype"])
    row = 0
    leaves = np.zeros(meta["size"], dtype=np.float64)
    try:
        for i in range(reader.num_record_batches):
            b = reader.get_batch(i)
            s = slice(row, row + b.num_rows)
            buf.obs[s] = unlist(b.column("obs"), shape, dtype)
            buf.next_obs[s] = unlist(b.column("next_obs"), shape, dtype)
            leaves[s] = load_transitions(buf, b, s)
            row += b.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise SnapshotError(f"replay snapshot {path} cannot be read (truncated?): {e}") from e
    if row != meta["size"]:
        raise SnapshotError(f"replay snapshot {path} holds {row} rows, its metadata says {meta['size']}")
    restore_state(buf, meta, leaves)
    buf.cursor = int(meta["cursor"])
    return meta


def export_parquet(snapshot: str | Path, out: str | Path) -> int:
    """Rewrite an Arrow snapshot of either replay as a Parquet table with the documented columns
    (whole stacked observations also for the pixel replay); returns its rows.

    The table is written to ``OUT.tmp`` beside ``out`` and renamed into place; a failure removes the
    temporary file, so nothing is left behind but a whole table or nothing.
    """
    reader = open_snapshot(Path(snapshot))
    meta, fmt = check_structure(reader, Path(snapshot))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        if fmt == PIXEL_FORMAT:
            rows = export_pixel_parquet(Path(snapshot), tmp)
        else:
            table = reader.read_all().drop_columns(["tree_leaf"])
            export_meta = {k: meta[k] for k in ("obs_shape", "obs_dtype", "capacity", "cursor", "inserts")}
            table = table.replace_schema_metadata({"adl": json.dumps(export_meta)})
            pq.write_table(table, tmp, compression="zstd")
            rows = table.num_rows
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


# ---------------------------------------------------------------------------------------------
# FrameStorage (pixels stored once per frame)


def write_frames(fs: FrameStorage, path: str | Path, compression: Compression = "none") -> dict[str, Any]:
    """Snapshot a :class:`FrameStorage`: one row per written slot, frames as fixed-size uint8 lists."""
    meta = {"format": FRAMES_FORMAT, **frame_state(fs)}
    batches = (
        pa.RecordBatch.from_pydict(frame_arrays(fs, s), metadata={"adl": json.dumps(meta)})
        for s in chunks(min(fs.written, fs.capacity))
    )
    first = next(batches)
    size = write_table_atomically(Path(path), first.schema, itertools.chain([first], batches), compression)
    return meta | {"bytes": size}


def read_frames(fs: FrameStorage, path: str | Path) -> dict[str, Any]:
    """Restore a :func:`write_frames` snapshot into ``fs`` (same capacity, stack and frame shape)."""
    path = Path(path)
    reader = open_snapshot(path)
    meta = read_meta(reader, path, FRAMES_FORMAT)
    mine = frame_state(fs)
    for key in ("capacity", "stack", "frame_shape"):
        if meta[key] != mine[key]:
            raise SnapshotError(
                f"frame snapshot {path} has {key} {meta[key]!r}, this storage has {mine[key]!r}"
            )
    row = 0
    for i in range(reader.num_record_batches):
        b = reader.get_batch(i)
        load_frames(fs, b, slice(row, row + b.num_rows))
        row += b.num_rows
    restore_frame_state(fs, meta)
    return meta
