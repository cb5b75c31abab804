"""Arrow snapshots of the replay: exact round trips (arrays, sum tree, RNG), Parquet export, bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.replay.batch import Transitions
from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.frame_storage import FrameStorage
from components.replay.snapshot import (
    SnapshotError,
    export_parquet,
    read_frames,
    read_replay,
    write_frames,
    write_replay,
)

ARRAYS = ("obs", "next_obs", "action", "reward", "done", "truncated", "n", "collector", "episode", "step")


def _batch(rng: np.random.Generator, b: int, obs_shape: tuple[int, ...], dtype: type) -> Transitions:
    if dtype is np.uint8:
        obs = rng.integers(0, 256, (b, *obs_shape), dtype=np.uint8)
    else:
        obs = rng.normal(size=(b, *obs_shape)).astype(dtype)
    return Transitions(
        obs=obs,
        action=rng.integers(0, 4, b),
        reward=rng.normal(size=b).astype(np.float32),
        next_obs=obs[::-1].copy(),
        done=rng.random(b) < 0.1,
        n=rng.integers(1, 4, b).astype(np.uint8),
        priority=rng.random(b).astype(np.float32) * (rng.random(b) < 0.8),  # some 0 = "max priority"
        collector=rng.integers(0, 3, b).astype(np.int16),
        episode=rng.integers(0, 1000, b),
        step=rng.integers(0, 500, b).astype(np.int32),
        truncated=rng.random(b) < 0.05,
    )


def _filled(kind: str, obs_shape=(4,), dtype=np.float32, capacity=1000, adds=23) -> ReplayBuffer:
    cfg = ReplayConfig(capacity=capacity, kind=kind, alpha=0.6)  # type: ignore[arg-type]
    buf = ReplayBuffer(cfg, obs_shape, np.dtype(dtype), seed=3)
    rng = np.random.default_rng(0)
    for _ in range(adds):  # 23 × 64 = 1472 > 1000: the ring has wrapped
        buf.add(_batch(rng, 64, obs_shape, dtype))
        if kind == "prioritized":
            idx, _ = buf.sample_indices(32, 0.5)
            buf.update_priorities(idx, rng.random(32) * 5)
    return buf


@pytest.mark.parametrize("kind", ["prioritized", "uniform"])
def test_wrapped_prioritized_replay_round_trips_exactly(kind, tmp_path):
    buf = _filled(kind)
    assert buf.inserts > buf.cfg.capacity and buf.cursor != 0  # wrapped, cursor mid-ring
    meta = write_replay(buf, tmp_path / "replay.arrow")
    assert meta["bytes"] == (tmp_path / "replay.arrow").stat().st_size
    assert not (tmp_path / "replay.arrow.tmp").exists()
    back = ReplayBuffer(buf.cfg, (4,), np.dtype(np.float32), seed=99)
    read_replay(back, tmp_path / "replay.arrow")
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(buf, name), err_msg=name)
    assert (back.cursor, back.size, back.inserts, back.samples) == (
        buf.cursor,
        buf.size,
        buf.inserts,
        buf.samples,
    )
    assert back.max_priority == buf.max_priority
    if kind == "prioritized":
        assert back.tree is not None and buf.tree is not None
        assert np.array_equal(back.tree.tree, buf.tree.tree)  # every inner node, bit for bit
    # The sampling RNG continues where it was: both draw the same next batch.
    a, b = buf.sample(16, 0.7), back.sample(16, 0.7)
    np.testing.assert_array_equal(a.slots, b.slots)
    np.testing.assert_array_equal(a.weight, b.weight)


def test_uint8_pixels_stay_uint8_fixed_size_lists(tmp_path):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    buf = _filled("prioritized", obs_shape=(2, 6, 6), dtype=np.uint8, capacity=100, adds=3)
    write_replay(buf, tmp_path / "px.arrow")
    schema = ipc.open_file(str(tmp_path / "px.arrow")).schema
    assert schema.field("obs").type == pa.list_(pa.uint8(), 72)
    back = ReplayBuffer(buf.cfg, (2, 6, 6), np.dtype(np.uint8))
    read_replay(back, tmp_path / "px.arrow")
    np.testing.assert_array_equal(back.obs, buf.obs)
    assert back.obs.dtype == np.uint8


def test_parquet_export_is_read_by_pandas_with_the_documented_columns(tmp_path):
    buf = _filled("prioritized")
    write_replay(buf, tmp_path / "replay.arrow")
    rows = export_parquet(tmp_path / "replay.arrow", tmp_path / "out" / "replay.parquet")
    df = pd.read_parquet(tmp_path / "out" / "replay.parquet")
    assert rows == len(df) == buf.size
    documented = ["obs", "action", "reward", "next_obs", "done", "truncated", "priority"]
    assert documented + ["collector", "episode", "step"] == [c for c in df.columns if c != "n"]
    np.testing.assert_array_equal(np.stack(df["obs"].to_numpy()), buf.obs)
    np.testing.assert_array_equal(df["action"].to_numpy(), buf.action)
    np.testing.assert_allclose(df["priority"].to_numpy(), buf.priorities())
    assert df["episode"].dtype == np.int64 and df["done"].dtype == bool


def test_snapshot_from_another_replay_config_is_refused_naming_the_key(tmp_path):
    buf = _filled("prioritized")
    write_replay(buf, tmp_path / "replay.arrow")
    other = ReplayBuffer(ReplayConfig(capacity=2000), (4,), np.dtype(np.float32))
    with pytest.raises(SnapshotError, match=r"replay.arrow has capacity 1000, this replay has 2000"):
        read_replay(other, tmp_path / "replay.arrow")
    wrong_shape = ReplayBuffer(buf.cfg, (5,), np.dtype(np.float32))
    with pytest.raises(SnapshotError, match=r"obs_shape \[4\], this replay has \[5\]"):
        read_replay(wrong_shape, tmp_path / "replay.arrow")


def test_truncated_snapshot_is_refused_naming_the_file(tmp_path):
    buf = _filled("prioritized")
    path = tmp_path / "replay.arrow"
    write_replay(buf, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    fresh = ReplayBuffer(buf.cfg, (4,), np.dtype(np.float32))
    with pytest.raises(SnapshotError, match=str(path)):
        read_replay(fresh, path)
    with pytest.raises(SnapshotError, match="not found"):
        read_replay(fresh, tmp_path / "missing.arrow")


def test_frame_storage_round_trips_after_wrapping(tmp_path):
    rng = np.random.default_rng(1)
    fs = FrameStorage(capacity=50, stack=4, num_envs=2, frame_shape=(8, 8))
    ids = [fs.reset(e, rng.integers(0, 256, (8, 8), dtype=np.uint8)) for e in range(2)]
    for _ in range(40):  # 2 + 80 frames into 50 slots: wrapped
        for e in range(2):
            nxt = fs.add_step(e, rng.integers(0, 256, (8, 8), dtype=np.uint8))
            fs.add(ids[e], nxt)
            ids[e] = nxt
    write_frames(fs, tmp_path / "frames.arrow")
    back = FrameStorage(capacity=50, stack=4, num_envs=2, frame_shape=(8, 8))
    read_frames(back, tmp_path / "frames.arrow")
    for name in ("frames", "frame_id", "obs_ids", "next_ids", "has_transition", "dependents"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fs, name), err_msg=name)
    assert back.written == fs.written and [list(h) for h in back.history] == [list(h) for h in fs.history]
    live = np.flatnonzero(fs.valid(np.arange(50)))
    for a, b in zip(fs.stacks(live), back.stacks(live)):
        np.testing.assert_array_equal(a, b)


def _rewrite(path, change):
    """The snapshot at ``path`` rewritten through ``change(table, meta) -> (table, meta)``."""
    import json

    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    table, meta = change(table, json.loads(table.schema.metadata[b"adl"]))
    table = table.replace_schema_metadata({"adl": json.dumps(meta)})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _set(name, index, value):
    import pyarrow as pa

    def change(t, m):
        values = t[name].to_numpy().copy()
        values[index] = value
        return t.set_column(t.schema.get_field_index(name), name, pa.array(values, t[name].type)), m

    return change


def test_check_snapshot_accepts_what_the_writer_wrote_and_names_every_bad_field(tmp_path):
    """Issue #15, item 8, at the replay: the checks a resume runs before it trusts a snapshot."""
    import pyarrow as pa

    from components.replay.snapshot_check import SnapshotSpec, check_snapshot

    buf = _filled("prioritized")
    spec = SnapshotSpec(1000, "prioritized", 0.6, (4,), "<f4", n_actions=4, max_n=3)
    path = tmp_path / "replay.arrow"
    write_replay(buf, path)
    good = path.read_bytes()
    assert check_snapshot(path, spec)["size"] == 1000
    for change, needle in [
        (lambda t, m: (t, m), "column 'action' holds 3 at row"),  # a run with 3 actions only
        (_set("action", 5, -1), "column 'action' holds -1 at row 5; allowed: 0 to 3"),
        (_set("reward", 7, np.nan), "column 'reward' holds nan at row 7"),
        (_set("n", 2, 0), "column 'n' holds 0 at row 2; allowed: 1 to 3"),
        (_set("tree_leaf", 9, -1.0), "column 'tree_leaf' holds -1.0 at row 9"),
        (lambda t, m: (t.drop_columns(["tree_leaf"]), m), "column 'tree_leaf' is missing"),
        (
            lambda t, m: (t.append_column("extra", pa.array(np.zeros(len(t)))), m),
            "has columns this format does not",
        ),
        (lambda t, m: (t.slice(0, 900), m), "holds 900 rows; its metadata says 1000"),
        (lambda t, m: (t, {**m, "size": "1000"}), "metadata field 'size' is '1000'"),
        (lambda t, m: (t, {**m, "rng": {"state": 1}}), "metadata field 'rng' is not a sampling RNG state"),
        (
            lambda t, m: (t, {**m, "obs_shape": [5]}),
            "column 'obs' is fixed_size_list<item: float>[4]; expected",
        ),
    ]:
        _rewrite(path, change)
        want = spec if "holds 3" not in needle else SnapshotSpec(1000, "prioritized", 0.6, (4,), "<f4", 3, 3)
        with pytest.raises(SnapshotError) as e:
            check_snapshot(path, want)
        assert needle in str(e.value) and str(path) in str(e.value), (needle, str(e.value))
        path.write_bytes(good)
    other = SnapshotSpec(1000, "prioritized", 0.6, (4,), "<f8", n_actions=4, max_n=3)
    with pytest.raises(SnapshotError, match="has obs_dtype '<f4'; this run's replay has '<f8'"):
        check_snapshot(path, other)


def test_export_of_a_snapshot_without_tree_leaf_is_refused_and_leaves_nothing(tmp_path):
    """Issue #15, item 9: a clear error, no traceback of a missing column, and no half-written file."""
    write_replay(_filled("uniform"), tmp_path / "replay.arrow")
    _rewrite(tmp_path / "replay.arrow", lambda t, m: (t.drop_columns(["tree_leaf"]), m))
    with pytest.raises(SnapshotError, match="column 'tree_leaf' is missing"):
        export_parquet(tmp_path / "replay.arrow", tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.arrow"]
