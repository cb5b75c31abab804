"""The Arrow pieces every replay snapshot is built from: atomic IPC files, fixed-size-list columns,
the per-slot transition columns both replays share, the frame-storage columns, and the sum tree.

``snapshot.py`` (whole observations, frame storages) and ``pixel_snapshot.py`` (the pixel replay)
assemble their formats from these, so each column is converted in one place.
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

from components.replay.buffer import ReplayBase
from components.replay.frame_storage import FrameStorage
from components.replay.sum_tree import SumTree

CHUNK_ROWS = 65_536  # rows per record batch: bounded memory while writing, no 2 GiB column limits
Compression = Literal["none", "lz4", "zstd"]
SCALARS = ("action", "reward", "done", "truncated", "n", "collector", "episode", "step")
# The columns of a replay table, in order: what a snapshot of whole observations holds (plus
# tree_leaf) and what ``adl replay export`` writes for either replay.
TABLE_COLUMNS: tuple[str, ...] = ("obs", "action", "reward", "next_obs", "done", "truncated", "n")
TABLE_COLUMNS += ("priority", "collector", "episode", "step")


class SnapshotError(ValueError):
    """A snapshot that cannot be restored into this replay; the message names the file and the mismatch."""


def fixed_list(a: np.ndarray) -> pa.FixedSizeListArray:
    """[B, *shape] → fixed_size_list<dtype>[prod(shape)], zero-copy for contiguous arrays."""
    width = int(np.prod(a.shape[1:], dtype=np.int64)) if a.ndim > 1 else 1
    flat = np.ascontiguousarray(a).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


def unlist(col: pa.Array, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`fixed_list` for one record batch's column."""
    values = col.values.to_numpy(zero_copy_only=False)
    return values.reshape((len(col), *shape)).astype(dtype, copy=False)


def write_table_atomically(
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


def open_snapshot(path: Path) -> ipc.RecordBatchFileReader:
    path = Path(path)
    if not path.is_file():
        raise SnapshotError(f"replay snapshot not found: {path}")
    try:
        return ipc.open_file(pa.memory_map(str(path), "r"))
    except (pa.ArrowInvalid, OSError) as e:
        raise SnapshotError(f"replay snapshot {path} is not a whole Arrow file (truncated?): {e}") from e


def snapshot_meta(reader: ipc.RecordBatchFileReader) -> dict[str, Any]:
    raw = (reader.schema.metadata or {}).get(b"adl")
    return json.loads(raw) if raw else {}  # type: ignore[no-any-return]


def read_meta(reader: ipc.RecordBatchFileReader, path: Path, fmt: str) -> dict[str, Any]:
    meta = snapshot_meta(reader)
    if meta.get("format") != fmt:
        raise SnapshotError(f"{path} is not an {fmt} snapshot (format {meta.get('format')!r})")
    return meta


def check_matches(path: Path, meta: dict[str, Any], mine: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if meta[key] != mine[key]:
            raise SnapshotError(
                f"replay snapshot {path} has {key} {meta[key]!r}, this replay has {mine[key]!r}"
            )


def rebuild_tree(tree: SumTree, leaves: np.ndarray) -> None:
    """Set the first ``len(leaves)`` leaves (the rest 0) and recompute every inner node, level by level."""
    tree.tree[:] = 0.0
    tree.tree[tree.n_leaves : tree.n_leaves + len(leaves)] = leaves
    for level in range(tree.depth - 1, -1, -1):
        nodes = np.arange(1 << level, 2 << level)
        tree.tree[nodes] = tree.tree[2 * nodes] + tree.tree[2 * nodes + 1]


# ---------------------------------------------------------------------------------------------
# What every replay keeps per slot besides observations


def replay_state(buf: ReplayBase) -> dict[str, Any]:
    """Config and counters of any replay (cursor-free), for snapshot metadata."""
    return {
        "capacity": buf.cfg.capacity,
        "kind": buf.cfg.kind,
        "alpha": buf.cfg.alpha,
        "size": buf.size,
        "inserts": buf.inserts,
        "samples": buf.samples,
        "max_priority": buf.max_priority,
        "rng": buf.rng.bit_generator.state,
    }


def transition_arrays(buf: ReplayBase, s: slice | np.ndarray, with_leaves: bool) -> dict[str, pa.Array]:
    """Columns action ... step, priority (p, not p^α) and optionally tree_leaf of slots ``s``."""
    slots = np.arange(s.start, s.stop) if isinstance(s, slice) else s
    cols = {name: pa.array(getattr(buf, name)[s]) for name in SCALARS}
    cols["priority"] = pa.array(buf.priorities(slots))
    if with_leaves:
        leaves = buf.tree.get(slots) if buf.tree is not None else np.ones(len(slots))
        cols["tree_leaf"] = pa.array(np.asarray(leaves, dtype=np.float64))
    return cols


def load_transitions(buf: ReplayBase, batch: pa.RecordBatch, s: slice) -> np.ndarray:
    """Set the scalar columns of slots ``s`` from ``batch``; returns its tree leaves."""
    for name in SCALARS:
        getattr(buf, name)[s] = batch.column(name).to_numpy(zero_copy_only=False)
    return batch.column("tree_leaf").to_numpy()  # type: ignore[no-any-return]


def restore_state(buf: ReplayBase, meta: dict[str, Any], leaves: np.ndarray) -> None:
    """Counters, largest priority, RNG and sum tree (from its leaves) of a restored replay."""
    if buf.tree is not None:
        rebuild_tree(buf.tree, leaves)
    buf.size, buf.inserts, buf.samples = int(meta["size"]), int(meta["inserts"]), int(meta["samples"])
    buf.max_priority = float(meta["max_priority"])
    buf.rng.bit_generator.state = meta["rng"]


# ---------------------------------------------------------------------------------------------
# Frame storage


def frame_state(fs: FrameStorage) -> dict[str, Any]:
    return {
        "capacity": fs.capacity,
        "stack": fs.stack,
        "frame_shape": list(fs.frames.shape[1:]),
        "written": fs.written,
        "history": [list(map(int, h)) for h in fs.history],
        "invalidated": list(map(int, fs._invalidated)),
    }


def frame_arrays(fs: FrameStorage, s: slice) -> dict[str, pa.Array]:
    """Slots ``s`` of a frame storage: the frame (uint8 list), its id, the two id stacks, flags."""
    return {
        "frame": fixed_list(fs.frames[s]),
        "frame_id": pa.array(fs.frame_id[s]),
        "obs_ids": fixed_list(fs.obs_ids[s]),
        "next_ids": fixed_list(fs.next_ids[s]),
        "has_transition": pa.array(fs.has_transition[s]),
        "dependents": fixed_list(fs.dependents[s]),
    }


def load_frames(fs: FrameStorage, batch: pa.RecordBatch, s: slice) -> None:
    fshape, stack = tuple(fs.frames.shape[1:]), fs.stack
    fs.frames[s] = unlist(batch.column("frame"), fshape, np.dtype(np.uint8))
    fs.frame_id[s] = batch.column("frame_id").to_numpy()
    fs.obs_ids[s] = unlist(batch.column("obs_ids"), (stack,), np.dtype(np.int64))
    fs.next_ids[s] = unlist(batch.column("next_ids"), (stack,), np.dtype(np.int64))
    fs.has_transition[s] = batch.column("has_transition").to_numpy(zero_copy_only=False)
    fs.dependents[s] = unlist(batch.column("dependents"), (stack,), np.dtype(np.int64))


def restore_frame_state(fs: FrameStorage, meta: dict[str, Any]) -> None:
    fs.written = int(meta["written"])
    for h, ids in zip(fs.history, meta["history"]):
        h.clear()
        h.extend(ids)
    fs._invalidated = list(meta["invalidated"])


def chunks(rows: int) -> Iterator[slice]:
    """Slices of at most CHUNK_ROWS rows covering [0, rows); one empty slice when rows is 0 (so that a
    writer still gets a batch to take its schema from)."""
    for lo in range(0, max(rows, 1), CHUNK_ROWS):
        yield slice(lo, min(lo + CHUNK_ROWS, rows))
