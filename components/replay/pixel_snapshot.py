"""Snapshots of the pixel replay (``adl-pixel-replay-1``) and its export as whole stacked observations.

One row per written ring slot, in slot order: the frame-storage columns (the 84×84 frame as a
fixed-size uint8 list, its id, the obs and next_obs id stacks, the flags) next to the transition
columns every replay has (action ... step, priority, tree_leaf). The metadata adds the frame ring's
counters and the collector-local id map, so that a restored replay goes on mapping the ids of
collectors that kept running.

The Parquet export is the same table ``adl replay export`` writes for a replay of whole
observations (obs, action, reward, next_obs, done, truncated, n, priority, collector, episode,
step), one row per live transition in slot order: stacks are rebuilt from the frames, a row group
at a time, so that readers need not know about frame ids. It is ~8× the size of the snapshot
before compression; zstd takes most of that back.
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

from components.replay import arrow_io
from components.replay.arrow_io import Compression, SnapshotError
from components.replay.buffer import ReplayConfig
from components.replay.pixel_buffer import PixelReplayBuffer
from components.replay.snapshot_check import PIXEL_FORMAT, check_structure

EXPORT_ROWS = 2_048  # transitions per Parquet row group: ~115 MB of rebuilt 4×84×84 stacks


def pixel_meta(buf: PixelReplayBuffer) -> dict[str, Any]:
    return {
        "format": PIXEL_FORMAT,
        **arrow_io.frame_state(buf.frames),
        **arrow_io.replay_state(buf),
        "frame_ids": buf.frame_ids.state(),
        "dropped": buf.dropped,
    }


def write_pixel_replay(buf: PixelReplayBuffer, path: Path, compression: Compression) -> dict[str, Any]:
    meta = pixel_meta(buf)
    fs = buf.frames

    def batches() -> Iterator[pa.RecordBatch]:
        for s in arrow_io.chunks(min(fs.written, fs.capacity)):
            cols = arrow_io.frame_arrays(fs, s) | arrow_io.transition_arrays(buf, s, with_leaves=True)
            yield pa.RecordBatch.from_pydict(cols, metadata={"adl": json.dumps(meta)})

    it = batches()
    first = next(it)
    size = arrow_io.write_table_atomically(path, first.schema, itertools.chain([first], it), compression)
    return meta | {"bytes": size}


def read_pixel_replay(buf: PixelReplayBuffer, path: Path) -> dict[str, Any]:
    reader = arrow_io.open_snapshot(path)
    meta = arrow_io.read_meta(reader, path, PIXEL_FORMAT)
    check_structure(reader, path)  # every key, type and column there, before any is used
    arrow_io.check_matches(path, meta, pixel_meta(buf), ("capacity", "kind", "alpha", "stack", "frame_shape"))
    rows = min(int(meta["written"]), int(meta["capacity"]))
    leaves = np.zeros(rows, dtype=np.float64)
    row = 0
    try:
        for i in range(reader.num_record_batches):
            b = reader.get_batch(i)
            s = slice(row, row + b.num_rows)
            arrow_io.load_frames(buf.frames, b, s)
            leaves[s] = arrow_io.load_transitions(buf, b, s)
            row += b.num_rows
    except (pa.ArrowInvalid, OSError, ValueError) as e:
        raise SnapshotError(f"replay snapshot {path} cannot be read (truncated?): {e}") from e
    if row != rows:
        raise SnapshotError(f"replay snapshot {path} holds {row} rows, its metadata says {rows}")
    arrow_io.restore_frame_state(buf.frames, meta)
    arrow_io.restore_state(buf, meta, leaves)
    buf.frame_ids.load(meta["frame_ids"])
    buf.dropped = int(meta["dropped"])
    return meta


def export_pixel_parquet(snapshot: Path, out: Path) -> int:
    """Whole stacked observations of every live transition, as the export of any replay; returns rows."""
    meta = arrow_io.read_meta(arrow_io.open_snapshot(snapshot), snapshot, PIXEL_FORMAT)
    cfg = ReplayConfig(capacity=meta["capacity"], kind=meta["kind"], alpha=meta["alpha"])
    buf = PixelReplayBuffer(cfg, meta["stack"], tuple(meta["frame_shape"]))
    read_pixel_replay(buf, snapshot)
    live = buf.valid_slots()
    export_meta = {
        "obs_shape": list(buf.obs_shape),
        "obs_dtype": np.dtype(np.uint8).str,
        "capacity": meta["capacity"],
        "inserts": meta["inserts"],
        "stored_as": "frames",
    }
    writer = None
    try:
        for lo in range(0, max(len(live), 1), EXPORT_ROWS):
            slots = live[lo : lo + EXPORT_ROWS]
            obs, next_obs = buf.frames.stacks(slots)
            cols = arrow_io.transition_arrays(buf, slots, with_leaves=False)
            cols |= {"obs": arrow_io.fixed_list(obs), "next_obs": arrow_io.fixed_list(next_obs)}
            table = pa.table({name: cols[name] for name in arrow_io.TABLE_COLUMNS})
            if writer is None:
                schema = table.schema.with_metadata({"adl": json.dumps(export_meta)})
                writer = pq.ParquetWriter(out, schema, compression="zstd")
            writer.write_table(table.replace_schema_metadata(schema.metadata))
    finally:
        if writer is not None:
            writer.close()
    return len(live)
