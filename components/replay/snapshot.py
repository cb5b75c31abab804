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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from components.replay.buffer import ReplayBuffer
from components.replay.frame_storage import FrameStorage
from components.replay.sum_tree import SumTree

FORMAT = "adl-replay-1"
FRAMES_FORMAT = "adl-frames-1"
CHUNK_ROWS = 65_536  # rows per record batch: bounded memory while writing, no 2 GiB column limits
Compression = Literal["none", "lz4", "zstd"]


class SnapshotError(ValueError):
    """A snapshot that cannot be restored into this replay; the message names the file and the mismatch."""


def _fixed_list(a: np.ndarray) -> pa.FixedSizeListArray:
    """[B, *shape] → fixed_size_list<dtype>[prod(shape)], zero-copy for contiguous arrays."""
    width = int(np.prod(a.shape[1:], dtype=np.int64)) if a.ndim > 1 else 1
    flat = np.ascontiguousarray(a).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


def _unlist(col: pa.Array, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`_fixed_list` for one record batch's column."""
    values = col.values.to_numpy(zero_copy_only=False)
    return values.reshape((len(col), *shape)).astype(dtype, copy=False)


def _write_table_atomically(
    path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch], compression: Compression
) -> int:
    """Arrow IPC file at ``path`` via ``path.tmp`` + rename; returns its size in bytes."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    opts = ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema, options=opts) as writer:
        for b in batches:
            writer.write_batch(b)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return path.stat().st_size


def _open(path: Path) -> ipc.RecordBatchFileReader:
    path = Path(path)
    if not path.is_file():
        raise SnapshotError(f"replay snapshot not found: {path}")
    try:
        return ipc.open_file(pa.memory_map(str(path), "r"))
    except (pa.ArrowInvalid, OSError) as e:
        raise SnapshotError(f"replay snapshot {path} is not a whole Arrow file (truncated?): {e}") from e


def _meta(reader: ipc.RecordBatchFileReader, path: Path, fmt: str) -> dict[str, Any]:
    raw = (reader.schema.metadata or {}).get(b"adl")
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != fmt:
        raise SnapshotError(f"{path} is not an {fmt} snapshot (format {meta.get('format')!r})")
    return meta  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# ReplayBuffer


def replay_meta(buf: ReplayBuffer) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "capacity": buf.cfg.capacity,
        "kind": buf.cfg.kind,
        "alpha": buf.cfg.alpha,
        "obs_shape": list(buf.obs.shape[1:]),
        "obs_dtype": buf.obs.dtype.str,
        "cursor": buf.cursor,
        "size": buf.size,
        "inserts": buf.inserts,
        "samples": buf.samples,
        "max_priority": buf.max_priority,
        "rng": buf.rng.bit_generator.state,
    }


def _replay_batches(buf: ReplayBuffer, schema: pa.Schema, with_leaves: bool) -> Iterator[pa.RecordBatch]:
    prio = buf.priorities()
    for lo in range(0, buf.size, CHUNK_ROWS):
        s = slice(lo, min(lo + CHUNK_ROWS, buf.size))
        cols = {
            "obs": _fixed_list(buf.obs[s]),
            "action": pa.array(buf.action[s]),
            "reward": pa.array(buf.reward[s]),
            "next_obs": _fixed_list(buf.next_obs[s]),
            "done": pa.array(buf.done[s]),
            "truncated": pa.array(buf.truncated[s]),
            "n": pa.array(buf.n[s]),
            "priority": pa.array(prio[s]),
            "collector": pa.array(buf.collector[s]),
            "episode": pa.array(buf.episode[s]),
            "step": pa.array(buf.step[s]),
        }
        if with_leaves:
            leaves = buf.tree.get(np.arange(s.start, s.stop)) if buf.tree is not None else prio[s]
            cols["tree_leaf"] = pa.array(np.asarray(leaves, dtype=np.float64))
        yield pa.RecordBatch.from_arrays(list(cols.values()), schema=schema)


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


def write_replay(buf: ReplayBuffer, path: str | Path, compression: Compression = "none") -> dict[str, Any]:
    """Snapshot ``buf`` to an Arrow IPC file (atomically); returns the metadata plus ``bytes``."""
    meta = replay_meta(buf)
    schema = _replay_schema(buf, True, meta)
    size = _write_table_atomically(Path(path), schema, _replay_batches(buf, schema, True), compression)
    return meta | {"bytes": size}


def read_replay_meta(path: str | Path) -> dict[str, Any]:
    return _meta(_open(Path(path)), Path(path), FORMAT)


def read_replay(buf: ReplayBuffer, path: str | Path) -> dict[str, Any]:
    """Restore a snapshot into ``buf`` (built from the same replay config); returns its metadata.

    Raises:
        SnapshotError: the file is missing or not whole, or its capacity, kind, α, observation shape
            or dtype differ from ``buf``'s (the message names which).
    """
    path = Path(path)
    reader = _open(path)
    meta = _meta(reader, path, FORMAT)
    mine = replay_meta(buf)
    for key in ("capacity", "kind", "alpha", "obs_shape", "obs_dtype"):
        if meta[key] != mine[key]:
            raise SnapshotError(
                f"replay snapshot {path} has {key} {meta[key]!r}, this replay has {mine[key]!r}"
            )
    shape, dtype = tuple(meta["obs_shape"]), np.dtype(meta["obs_dtype"])
    row = 0
    leaves = np.zeros(meta["size"], dtype=np.float64)
    try:
        for i in range(reader.num_record_batches):
            b = reader.get_batch(i)
            s = slice(row, row + b.num_rows)
            buf.obs[s] = _unlist(b.column("obs"), shape, dtype)
            buf.next_obs[s] = _unlist(b.column("next_obs"), shape, dtype)
            for name in ("action", "reward", "done", "truncated", "n", "collector", "episode", "step"):
                getattr(buf, name)[s] = b.column(name).to_numpy(zero_copy_only=False)
            leaves[s] = b.column("tree_leaf").to_numpy()
            row += b.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise SnapshotError(f"replay snapshot {path} cannot be read (truncated?): {e}") from e
    if row != meta["size"]:
        raise SnapshotError(f"replay snapshot {path} holds {row} rows, its metadata says {meta['size']}")
    if buf.tree is not None:
        rebuild_tree(buf.tree, leaves)
    buf.cursor, buf.size = int(meta["cursor"]), int(meta["size"])
    buf.inserts, buf.samples = int(meta["inserts"]), int(meta["samples"])
    buf.max_priority = float(meta["max_priority"])
    buf.rng.bit_generator.state = meta["rng"]
    return meta


def rebuild_tree(tree: SumTree, leaves: np.ndarray) -> None:
    """Set the first ``len(leaves)`` leaves (the rest 0) and recompute every inner node, level by level."""
    tree.tree[:] = 0.0
    tree.tree[tree.n_leaves : tree.n_leaves + len(leaves)] = leaves
    for level in range(tree.depth - 1, -1, -1):
        nodes = np.arange(1 << level, 2 << level)
        tree.tree[nodes] = tree.tree[2 * nodes] + tree.tree[2 * nodes + 1]


def export_parquet(snapshot: str | Path, out: str | Path) -> int:
    """Rewrite an Arrow snapshot as a Parquet table with the documented columns; returns its rows."""
    reader = _open(Path(snapshot))
    meta = _meta(reader, Path(snapshot), FORMAT)
    table = reader.read_all().drop_columns(["tree_leaf"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export_meta = {k: meta[k] for k in ("obs_shape", "obs_dtype", "capacity", "cursor", "inserts")}
    table = table.replace_schema_metadata({"adl": json.dumps(export_meta)})
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)
    return table.num_rows


# ---------------------------------------------------------------------------------------------
# FrameStorage (pixels stored once per frame)


def write_frames(fs: FrameStorage, path: str | Path, compression: Compression = "none") -> dict[str, Any]:
    """Snapshot a :class:`FrameStorage`: one row per written slot, frames as fixed-size uint8 lists."""
    rows = min(fs.written, fs.capacity)
    meta = {
        "format": FRAMES_FORMAT,
        "capacity": fs.capacity,
        "stack": fs.stack,
        "frame_shape": list(fs.frames.shape[1:]),
        "written": fs.written,
        "history": [list(map(int, h)) for h in fs.history],
        "invalidated": list(map(int, fs._invalidated)),
    }

    def batches() -> Iterator[pa.RecordBatch]:
        for lo in range(0, max(rows, 1), CHUNK_ROWS):
            s = slice(lo, min(lo + CHUNK_ROWS, rows))
            yield pa.RecordBatch.from_pydict(
                {
                    "frame": _fixed_list(fs.frames[s]),
                    "frame_id": pa.array(fs.frame_id[s]),
                    "obs_ids": _fixed_list(fs.obs_ids[s]),
                    "next_ids": _fixed_list(fs.next_ids[s]),
                    "has_transition": pa.array(fs.has_transition[s]),
                    "dependents": _fixed_list(fs.dependents[s]),
                },
                metadata={"adl": json.dumps(meta)},
            )

    first = next(batches())
    size = _write_table_atomically(Path(path), first.schema, batches(), compression)
    return meta | {"bytes": size}


def read_frames(fs: FrameStorage, path: str | Path) -> dict[str, Any]:
    """Restore a :func:`write_frames` snapshot into ``fs`` (same capacity, stack and frame shape)."""
    path = Path(path)
    reader = _open(path)
    meta = _meta(reader, path, FRAMES_FORMAT)
    mine = {"capacity": fs.capacity, "stack": fs.stack, "frame_shape": list(fs.frames.shape[1:])}
    for key, value in mine.items():
        if meta[key] != value:
            raise SnapshotError(f"frame snapshot {path} has {key} {meta[key]!r}, this storage has {value!r}")
    fshape, stack, row = tuple(meta["frame_shape"]), fs.stack, 0
    for i in range(reader.num_record_batches):
        b = reader.get_batch(i)
        s = slice(row, row + b.num_rows)
        fs.frames[s] = _unlist(b.column("frame"), fshape, np.dtype(np.uint8))
        fs.frame_id[s] = b.column("frame_id").to_numpy()
        fs.obs_ids[s] = _unlist(b.column("obs_ids"), (stack,), np.dtype(np.int64))
        fs.next_ids[s] = _unlist(b.column("next_ids"), (stack,), np.dtype(np.int64))
        fs.has_transition[s] = b.column("has_transition").to_numpy(zero_copy_only=False)
        fs.dependents[s] = _unlist(b.column("dependents"), (stack,), np.dtype(np.int64))
        row += b.num_rows
    fs.written = int(meta["written"])
    for h, ids in zip(fs.history, meta["history"]):
        h.clear()
        h.extend(ids)
    fs._invalidated = list(meta["invalidated"])
    return meta
