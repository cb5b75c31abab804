"""A replay snapshot as input to be checked before any of it is trusted.

A checkpoint's CRC says a file is the one that was written, not that what was written makes sense:
a file written by other code (or a bug), with a matching CRC, can still hold the wrong columns, an
observation width that is not the env's, a ``size`` that lies about the rows, actions the network
has no output for, or frame ids pointing outside the ring. Each of those would crash (or silently
corrupt) training long after the run was reopened. :func:`check_snapshot` reads the file once,
batch by batch over its memory map, and refuses it with a :class:`SnapshotError` that names the
file and the field, before anything is loaded:

- the metadata: format, every key with its type and range, the replay's capacity, kind and α, the
  observation shape and dtype (or frame stack and frame shape), a sampling-RNG state numpy accepts;
- the schema: exactly the columns, types and list widths the writer produces, no nulls;
- the rows: as many as the metadata says (``size``, or the written frame slots);
- the values: ``0 <= action < n_actions``, ``1 <= n <= n_step``, finite rewards, finite
  non-negative priorities and tree leaves, non-negative collector/episode/step; for frame-stack
  replays every frame id in its own slot and inside the ring, every live transition's ids inside
  ``[0, written)`` and in the slot of its newest frame, ``size`` equal to the live transitions
  (those checks live with their format, in ``pixel_snapshot.py``).

:func:`check_structure` is the metadata-and-schema half, for readers that have no expectations of
their own (``read_replay`` checks them against its buffer; ``export_parquet`` against the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from components.replay.arrow_io import (
    SnapshotError,
    frame_arrays,
    open_snapshot,
    snapshot_meta,
    transition_arrays,
)
from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.pixel_buffer import PixelReplayBuffer

FORMAT = "adl-replay-1"
PIXEL_FORMAT = "adl-pixel-replay-1"
COMMON_KEYS: dict[str, Any] = {
    "capacity": int,
    "kind": str,
    "alpha": (int, float),
    "size": int,
    "inserts": int,
}
COMMON_KEYS |= {"samples": int, "max_priority": (int, float), "rng": dict}
PLAIN_KEYS: dict[str, Any] = {"obs_shape": list, "obs_dtype": str, "cursor": int}
PIXEL_KEYS: dict[str, Any] = {
    "stack": int,
    "frame_shape": list,
    "written": int,
    "history": list,
    "invalidated": list,
}
PIXEL_KEYS |= {"frame_ids": list, "dropped": int}


@dataclass(frozen=True)
class SnapshotSpec:
    """What the replay that will load a snapshot expects of it."""

    capacity: int
    kind: str
    alpha: float
    obs_shape: tuple[int, ...]  # for frame stacks: (stack, H, W)
    obs_dtype: str  # numpy dtype string, e.g. '<f4', '|u1'
    n_actions: int
    max_n: int  # the n-step horizon
    frame_stack: bool = False  # frames stored once (PixelReplayBuffer)


def fail(path: Path, what: str) -> SnapshotError:
    return SnapshotError(f"replay snapshot {path}: {what}")


def _check_meta(path: Path, meta: dict[str, Any], fmt: str) -> None:
    keys = COMMON_KEYS | (PIXEL_KEYS if fmt == PIXEL_FORMAT else PLAIN_KEYS)
    for key, tp in keys.items():
        value = meta.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, tp):
            raise fail(
                path, f"metadata field {key!r} is {value!r}; expected a {getattr(tp, '__name__', 'number')}"
            )
        if isinstance(value, int | float) and (not math.isfinite(value) or value < 0):
            raise fail(path, f"metadata field {key!r} is {value!r}; expected a finite number >= 0")
    if meta["capacity"] < 1 or not meta["size"] <= meta["capacity"] or meta["max_priority"] <= 0:
        raise fail(
            path,
            f"metadata capacity {meta['capacity']}, size {meta['size']}, max_priority "
            f"{meta['max_priority']} are impossible (size <= capacity, max_priority > 0)",
        )
    try:
        np.random.default_rng(0).bit_generator.state = meta["rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise fail(path, f"metadata field 'rng' is not a sampling RNG state ({e})") from None
    shape = meta["frame_shape"] if fmt == PIXEL_FORMAT else meta["obs_shape"]
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise fail(path, f"metadata observation/frame shape {shape!r} is not a list of positive sizes")
    if fmt == FORMAT:
        if np.dtype(meta["obs_dtype"]).kind not in "biuf":
            raise fail(path, f"metadata field 'obs_dtype' {meta['obs_dtype']!r} is not a numeric dtype")
        if not meta["cursor"] < meta["capacity"] or meta["inserts"] < meta["size"]:
            raise fail(
                path,
                f"metadata cursor {meta['cursor']} and inserts {meta['inserts']} do not fit "
                f"size {meta['size']}",
            )
        if meta["size"] < meta["capacity"] and meta["cursor"] != meta["size"]:
            raise fail(
                path, f"metadata cursor {meta['cursor']} is not size {meta['size']} of a ring not yet full"
            )
    elif meta["stack"] < 1 or meta["capacity"] <= meta["stack"]:
        raise fail(path, f"metadata stack {meta['stack']} does not fit capacity {meta['capacity']}")


def _expected_schema(meta: dict[str, Any], fmt: str) -> pa.Schema:
    """The schema the writer produces for this metadata, from a one-slot replay of the same kind."""
    if fmt == FORMAT:
        buf = ReplayBuffer(ReplayConfig(capacity=1), tuple(meta["obs_shape"]), np.dtype(meta["obs_dtype"]))
        obs = pa.list_(pa.from_numpy_dtype(buf.obs.dtype), int(np.prod(meta["obs_shape"])))
        cols = transition_arrays(buf, slice(0, 0), with_leaves=True)
        fields = [("obs", obs), *((k, v.type) for k, v in cols.items()), ("next_obs", obs)]
        order: tuple[str, ...] = ("obs", "action", "reward", "next_obs", "done", "truncated", "n", "priority")
        order += ("collector", "episode", "step", "tree_leaf")
        by_name = dict(fields)
        return pa.schema([(name, by_name[name]) for name in order])
    pix = PixelReplayBuffer(
        ReplayConfig(capacity=meta["stack"] + 1), meta["stack"], tuple(meta["frame_shape"])
    )
    cols = frame_arrays(pix.frames, slice(0, 0)) | transition_arrays(pix, slice(0, 0), with_leaves=True)
    return pa.schema([(k, v.type) for k, v in cols.items()])


def check_structure(reader: ipc.RecordBatchFileReader, path: Path) -> tuple[dict[str, Any], str]:
    """The snapshot's metadata and format, after its metadata and schema are checked."""
    try:
        meta = snapshot_meta(reader)
    except ValueError as e:
        raise fail(path, f"its metadata is not JSON ({e})") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt not in (FORMAT, PIXEL_FORMAT):
        raise fail(path, f"is not an adl replay snapshot (format {fmt!r})")
    _check_meta(path, meta, fmt)
    want, have = _expected_schema(meta, fmt), reader.schema.remove_metadata()
    for f in want:
        if f.name not in have.names:
            raise fail(path, f"column {f.name!r} is missing")
        if have.field(f.name).type != f.type:
            raise fail(path, f"column {f.name!r} is {have.field(f.name).type}; expected {f.type}")
    if extra := [n for n in have.names if n not in want.names]:
        raise fail(path, f"has columns this format does not: {extra}")
    return meta, fmt


def _range(
    path: Path, name: str, values: np.ndarray, row0: int, lo: float, hi: float, mask: Any = None
) -> None:
    """Every value of column ``name`` (where ``mask``) finite and in [lo, hi]."""
    v = values if mask is None else values[mask]
    rows = np.arange(len(values)) if mask is None else np.flatnonzero(mask)
    bad = ~np.isfinite(v) | (v < lo) | (v > hi) if v.dtype.kind == "f" else (v < lo) | (v > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = row0 + int(rows[i])
        raise fail(path, f"column {name!r} holds {v[i].item()!r} at row {row}; allowed: {lo:g} to {hi:g}")


def _check_rows(path: Path, b: pa.RecordBatch, row0: int, spec: SnapshotSpec, meta: dict[str, Any]) -> int:
    """Value checks of one record batch; returns its live transitions."""
    col = {name: b.column(name) for name in b.schema.names}
    for name, c in col.items():
        values = getattr(c, "values", None)
        if c.null_count or (values is not None and values.null_count):
            raise fail(path, f"column {name!r} holds nulls near row {row0}")
    num = {
        k: col[k].to_numpy(zero_copy_only=False) for k in ("action", "reward", "n", "priority", "tree_leaf")
    }
    num |= {k: col[k].to_numpy(zero_copy_only=False) for k in ("collector", "episode", "step")}
    live = None
    if spec.frame_stack:
        live = col["has_transition"].to_numpy(zero_copy_only=False)
        check_frame_rows(path, col, row0, meta, live)
    if not spec.frame_stack and np.dtype(spec.obs_dtype).kind == "f":
        size = int(np.prod(spec.obs_shape))
        for name in ("obs", "next_obs"):  # a NaN or inf observation turns every loss that samples it NaN
            flat = col[name].flatten().to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(~np.isfinite(flat))
            if len(bad):
                row = row0 + int(bad[0]) // size
                raise fail(
                    path, f"column {name!r} holds {flat[bad[0]].item()!r} at row {row}; allowed: finite"
                )
    _range(path, "action", num["action"], row0, 0, spec.n_actions - 1, live)
    _range(path, "n", num["n"], row0, 1, spec.max_n, live)
    _range(path, "reward", num["reward"], row0, -np.inf, np.inf, live)
    for name in ("collector", "episode", "step"):
        _range(path, name, num[name], row0, 0, np.iinfo(np.int64).max, live)
    for name in ("priority", "tree_leaf"):
        _range(path, name, num[name], row0, 0, np.finfo(np.float64).max)
    return b.num_rows if live is None else int(live.sum())


def check_snapshot(path: str | Path, spec: SnapshotSpec) -> dict[str, Any]:
    """Refuse a snapshot the replay described by ``spec`` cannot safely load; returns its metadata."""
    path = Path(path)
    reader = open_snapshot(path)
    meta, fmt = check_structure(reader, path)
    if (fmt == PIXEL_FORMAT) != spec.frame_stack:
        raise fail(
            path,
            f"is a {fmt} snapshot; this run's replay stores "
            f"{'frames once' if spec.frame_stack else 'whole observations'}",
        )
    shape = [meta["stack"], *meta["frame_shape"]] if spec.frame_stack else meta["obs_shape"]
    mine = {
        "capacity": spec.capacity,
        "kind": spec.kind,
        "alpha": spec.alpha,
        "observation shape": list(spec.obs_shape),
    }
    theirs = {
        "capacity": meta["capacity"],
        "kind": meta["kind"],
        "alpha": meta["alpha"],
        "observation shape": shape,
    }
    if not spec.frame_stack:
        mine["obs_dtype"], theirs["obs_dtype"] = np.dtype(spec.obs_dtype).str, np.dtype(meta["obs_dtype"]).str
    for key, value in theirs.items():
        if value != mine[key]:
            raise fail(path, f"has {key} {value!r}; this run's replay has {mine[key]!r}")
    rows = live = 0
    try:
        for i in range(reader.num_record_batches):
            b = reader.get_batch(i)
            live += _check_rows(path, b, rows, spec, meta)
            rows += b.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise fail(path, f"cannot be read (truncated?): {e}") from e
    want_rows = min(meta["written"], meta["capacity"]) if spec.frame_stack else meta["size"]
    if rows != want_rows:
        raise fail(path, f"holds {rows} rows; its metadata says {want_rows}")
    if spec.frame_stack:
        check_pixel_meta(path, meta, live)
    return meta


# ---------------------------------------------------------------------------------------------
# What a frame-stack snapshot must hold besides the columns every replay has
# (``check_snapshot`` calls these)


def check_frame_rows(
    path: Path, col: dict[str, Any], row0: int, meta: dict[str, Any], live: np.ndarray
) -> None:
    cap, stack, written = meta["capacity"], meta["stack"], meta["written"]
    slots = row0 + np.arange(len(live))
    fid = col["frame_id"].to_numpy()
    bad = (fid != -1) & ((fid < max(0, written - cap)) | (fid >= written) | (fid % cap != slots))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise fail(
            path,
            f"column 'frame_id' holds {fid[i]} in slot {slots[i]}, not a frame of that slot in "
            f"[0, {written})",
        )
    for name in ("obs_ids", "next_ids"):
        ids = col[name].values.to_numpy().reshape(-1, stack)[live]
        if ((ids < 0) | (ids >= written)).any():
            raise fail(path, f"column {name!r} holds frame ids outside [0, {written}) near row {row0}")
    newest = col["obs_ids"].values.to_numpy().reshape(-1, stack)[live, -1]
    if (newest % cap != slots[live]).any():
        raise fail(
            path, f"column 'obs_ids' puts a transition outside the slot of its newest frame near row {row0}"
        )
    deps = col["dependents"].values.to_numpy()
    if ((deps < -1) | (deps >= cap)).any():
        raise fail(path, f"column 'dependents' holds slots outside [-1, {cap}) near row {row0}")


def check_pixel_meta(path: Path, meta: dict[str, Any], live: int) -> None:
    written, cap = meta["written"], meta["capacity"]
    if meta["size"] != live:
        raise fail(path, f"metadata size {meta['size']} is not the {live} live transitions it holds")
    history = meta["history"]
    if not all(
        isinstance(h, list) and all(isinstance(x, int) and 0 <= x < written for x in h) for h in history
    ):
        raise fail(path, f"metadata field 'history' holds frame ids outside [0, {written})")
    if not all(isinstance(x, int) and 0 <= x < cap for x in meta["invalidated"]):
        raise fail(path, f"metadata field 'invalidated' holds slots outside [0, {cap})")
    for row in meta["frame_ids"]:
        ok = isinstance(row, list) and len(row) == 5 and all(isinstance(x, int) for x in row)
        if not ok or min(row[2:]) < 0 or row[3] + row[4] > written:
            raise fail(path, f"metadata field 'frame_ids' has a bad segment {row!r}")
