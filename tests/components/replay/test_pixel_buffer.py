"""The pixel replay against a naive ReplayBuffer fed the same real Pong stream.

Two collectors (2 envs each, 4-frame stacks, 3-step returns, 33–40-step episodes) push interleaved,
in frame mode into a PixelReplayBuffer and in whole-stack mode (same seeds, weights and ε draws,
so the same stream) into a ReplayBuffer. A transition is named by (collector, episode, step) in both.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from components.config import load
from components.replay.batch import PixelTransitions, Transitions
from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.factory import make_replay
from components.replay.pixel_buffer import PixelReplayBuffer
from components.replay.snapshot import SnapshotError, export_parquet, read_replay, write_replay
from components.rl.dqn.collector import Collector
from components.rl.dqn.config import DQNConfig

SHAPE = (4, 84, 84)
PUSHES, STEPS = 4, 20  # per collector: 160 env steps in all, ~330 frames


@pytest.fixture(scope="module")
def stream() -> list[tuple[PixelTransitions, Transitions]]:
    settings = [
        "collectors.envs_per_collector=2",
        "collectors.num_collectors=2",
        "env.max_episode_steps=160",  # raw frames (frame skip 4, up to 30 no-ops): 33–40 steps
        "learner.n_step=3",
        "collectors.epsilon=schedule",  # random actions (ε = 1): the paddle moves, stacks differ
        "collectors.schedule.kind=constant",
        "replay.capacity=1000",
        "replay.min_size=64",
        "learner.batch_size=16",
    ]
    cfg = load(DQNConfig, "configs/dqn/pong.yaml", settings)
    pairs = [(Collector(cfg, i, SHAPE, 6), Collector(cfg, i, SHAPE, 6, frames=False)) for i in (0, 1)]
    out = []
    for _ in range(PUSHES):
        for pixel, naive in pairs:  # collector 0, collector 1, collector 0, ...: interleaved
            out.append((pixel.run(STEPS)[0], naive.run(STEPS)[0]))
    assert sum(p.transitions.truncated.sum() for p, _ in out) >= 4  # several episode ends crossed
    return out


def _cfg(capacity: int, kind: str) -> ReplayConfig:
    return ReplayConfig(capacity=capacity, kind=kind, alpha=0.6)  # type: ignore[arg-type]


def _naive(stream) -> tuple[ReplayBuffer, dict[tuple[int, int, int], int]]:
    """Every transition of the stream, whole, and its slot by (collector, episode, step)."""
    buf = ReplayBuffer(_cfg(10_000, "prioritized"), SHAPE, np.dtype(np.uint8))
    for _, whole in stream:
        buf.add(whole)
    keys = zip(buf.collector[: buf.size], buf.episode[: buf.size], buf.step[: buf.size])
    return buf, {(int(c), int(e), int(s)): i for i, (c, e, s) in enumerate(keys)}


def _naive_slots(buf: PixelReplayBuffer, index: dict, slots: np.ndarray) -> np.ndarray:
    return np.array([index[int(buf.collector[s]), int(buf.episode[s]), int(buf.step[s])] for s in slots])


def _assert_same(buf: PixelReplayBuffer, naive: ReplayBuffer, index: dict, slots: np.ndarray) -> None:
    """Slots ``slots`` of the pixel replay hold, bit for bit, what the naive replay holds for them."""
    mine = _naive_slots(buf, index, slots)
    obs, next_obs = buf.frames.stacks(slots)
    np.testing.assert_array_equal(obs, naive.obs[mine])
    np.testing.assert_array_equal(next_obs, naive.next_obs[mine])
    for name in ("action", "reward", "done", "truncated", "n"):
        np.testing.assert_array_equal(getattr(buf, name)[slots], getattr(naive, name)[mine], err_msg=name)


@pytest.mark.parametrize("kind", ["prioritized", "uniform"])
def test_sampled_stacks_equal_the_naive_replay_bit_for_bit(stream, kind):
    naive, index = _naive(stream)
    buf = make_replay(_cfg(10_000, kind), SHAPE, np.uint8, seed=1, frame_stack=True)
    assert isinstance(buf, PixelReplayBuffer)
    for push, _ in stream:
        buf.add(push)
    assert len(buf) == len(naive) == buf.inserts and buf.dropped == 0  # nothing lost without wrap-around
    live = buf.valid_slots()
    _assert_same(buf, naive, index, live)
    # Both collectors' frames interleave in the ring and both are mapped right.
    assert set(buf.collector[live].tolist()) == {0, 1}
    if kind == "prioritized":  # the collectors' initial |δ|, as the naive replay has them
        np.testing.assert_allclose(buf.priorities(live), naive.priorities(_naive_slots(buf, index, live)))
    for batch in buf.sample_many(32, 10, beta=0.5):
        mine = _naive_slots(buf, index, batch.slots)
        np.testing.assert_array_equal(batch.obs, naive.obs[mine])
        np.testing.assert_array_equal(batch.next_obs, naive.next_obs[mine])
        np.testing.assert_array_equal(batch.reward, naive.reward[mine])
        assert batch.obs.dtype == np.uint8 and batch.obs.shape == (32, *SHAPE)
    # Distinct stacks: the comparison can tell frames apart.
    assert len({o.tobytes() for o in naive.obs[: naive.size]}) > 0.8 * naive.size


@pytest.mark.parametrize("kind", ["prioritized", "uniform"])
def test_after_wrap_around_dead_slots_are_never_sampled_and_live_ones_still_match(stream, kind):
    naive, index = _naive(stream)
    buf = PixelReplayBuffer(_cfg(100, kind), stack=4, seed=2)
    late_dead = 0
    for k, (push, _) in enumerate(stream):
        sampled = buf.sample(16, beta=0.4).slots if len(buf) else np.zeros(0, np.int64)
        buf.add(push)
        # The learner's answer for slots sampled before this push arrives after it.
        buf.update_priorities(sampled, np.full(len(sampled), 50.0))
        late_dead += int((~buf.frames.valid(sampled)).sum())
        live = buf.valid_slots()
        assert len(live) == len(buf) <= 100
        _assert_same(buf, naive, index, live)
        dead = np.setdiff1d(np.arange(100), live)
        if buf.tree is not None:
            assert np.all(buf.tree.get(dead) == 0) and np.all(buf.tree.get(live) > 0)
        if k >= 2:
            drawn = np.concatenate([b.slots for b in buf.sample_many(64, 40, beta=0.4)])
            assert buf.frames.valid(drawn).all()
            if kind == "uniform":  # every live slot, roughly equally often
                counts = np.bincount(drawn, minlength=100)[live]
                assert counts.min() > 0 and counts.max() < 4 * counts.mean()
    assert buf.frames.written > 3 * 100  # three laps of the ring
    assert late_dead > 0  # the late-update case happened, and those slots stayed at 0 above
    assert len(buf) >= 50


def test_memory_per_transition_is_under_a_fifth_of_whole_stacks(stream):
    naive, _ = _naive(stream)
    buf = PixelReplayBuffer(_cfg(200, "prioritized"), stack=4)
    for push, _ in stream:
        buf.add(push)
    assert buf.frames.written > 200 and len(buf) > 150  # full and wrapped
    arrays = [naive.obs, naive.next_obs, naive.action, naive.reward, naive.done, naive.truncated]
    arrays += [naive.n, naive.collector, naive.episode, naive.step, naive.tree.tree]  # type: ignore[union-attr]
    naive_per = sum(a.nbytes for a in arrays) / naive.cfg.capacity
    pixel_per = buf.nbytes / len(buf)  # slots without a transition (final frames, look-back) included
    print(f"bytes per transition: {naive_per:.0f} whole, {pixel_per:.0f} as frames")
    assert pixel_per < naive_per / 5
    push, whole = stream[2]
    print(f"one push: {len(pickle.dumps(whole, 5))} B whole, {len(pickle.dumps(push, 5))} B as frames")
    assert len(pickle.dumps(push, 5)) < len(pickle.dumps(whole, 5)) / 5


def _frame_push(collector: int, generation: int, first: int, values: list[int]) -> PixelTransitions:
    """Frames whose pixels all equal their value; one transition per frame after the first, S = 2."""
    frames = np.array([np.full((3, 3), v, np.uint8) for v in values])
    ids = np.arange(first, first + len(values))
    obs = np.stack([ids[:-1] - 1, ids[:-1]], axis=1).clip(0)  # local 0 starts an episode
    b = len(obs)
    z = np.zeros(b)
    t = Transitions(
        obs,
        z.astype(np.int64),
        z.astype(np.float32),
        obs + 1,
        z.astype(bool),
        np.ones(b, np.uint8),
        np.ones(b, np.float32),
        np.full(b, collector, np.int16),
        np.full(b, generation, np.int64),
        ids[:-1].astype(np.int32),
        z.astype(bool),
    )
    return PixelTransitions(frames, first, collector, generation, t)


def test_a_replacement_collector_numbering_from_zero_does_not_mix_with_its_predecessor():
    buf = PixelReplayBuffer(_cfg(50, "prioritized"), stack=2, frame_shape=(3, 3))
    buf.add(_frame_push(0, 0, 0, [10, 11, 12, 13]))
    buf.add(_frame_push(1, 0, 0, [20, 21, 22]))
    buf.add(_frame_push(0, 1, 0, [30, 31, 32]))  # collector 0's replacement: local ids 0, 1, 2 again
    buf.add(_frame_push(1, 0, 3, [23, 24]))  # collector 1 goes on, naming its frame 2 of the last push
    live = buf.valid_slots()
    obs, next_obs = buf.frames.stacks(live)
    got = {
        (int(buf.collector[s]), int(buf.episode[s]), int(buf.step[s])): (
            o[:, 0, 0].tolist(),
            n[:, 0, 0].tolist(),
        )
        for s, o, n in zip(live, obs, next_obs)
    }
    assert got[(0, 0, 1)] == ([10, 11], [11, 12])
    assert got[(0, 1, 1)] == ([30, 31], [31, 32])
    assert got[(1, 0, 3)] == ([22, 23], [23, 24])  # across two pushes with others in between
    assert len(got) == 3 + 2 + 2 + 1


@pytest.mark.parametrize("kind", ["prioritized", "uniform"])
def test_snapshot_round_trip_restores_identical_samples_and_goes_on_mapping(stream, kind, tmp_path):
    naive, index = _naive(stream)
    buf = PixelReplayBuffer(_cfg(150, kind), stack=4, seed=3)
    for push, _ in stream[:6]:
        buf.add(push)
        if kind == "prioritized":
            batch = buf.sample(16, 0.5)
            buf.update_priorities(batch.slots, np.linspace(0.1, 3.0, 16))
    assert buf.frames.written > 150
    meta = write_replay(buf, tmp_path / "replay.arrow", compression="lz4")
    assert meta["format"] == "adl-pixel-replay-1" and meta["size"] == len(buf)
    back = PixelReplayBuffer(_cfg(150, kind), stack=4, seed=99)
    read_replay(back, tmp_path / "replay.arrow")
    for name in ("frames", "frame_id", "obs_ids", "next_ids", "has_transition", "dependents"):
        np.testing.assert_array_equal(getattr(back.frames, name), getattr(buf.frames, name), err_msg=name)
    if buf.tree is not None and back.tree is not None:
        assert np.array_equal(back.tree.tree, buf.tree.tree)
    for a, b in zip(buf.sample_many(16, 5, 0.7), back.sample_many(16, 5, 0.7)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # Both go on with the collectors' next pushes, which name frames sent before the snapshot.
    for push, _ in stream[6:]:
        np.testing.assert_array_equal(buf.add(push), back.add(push))
    assert back.frame_ids.segments == buf.frame_ids.segments and len(back) == len(buf)
    _assert_same(back, naive, index, back.valid_slots())
    a, b = buf.sample(32, 0.7), back.sample(32, 0.7)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.slots, b.slots)


def test_export_writes_whole_stacks_of_the_live_transitions_and_formats_are_not_mixed(stream, tmp_path):
    import pandas as pd

    naive, index = _naive(stream)
    buf = PixelReplayBuffer(_cfg(150, "prioritized"), stack=4)
    for push, _ in stream:
        buf.add(push)
    write_replay(buf, tmp_path / "replay.arrow")
    rows = export_parquet(tmp_path / "replay.arrow", tmp_path / "replay.parquet")
    df = pd.read_parquet(tmp_path / "replay.parquet")
    live = buf.valid_slots()
    assert rows == len(df) == len(live)
    assert list(df.columns) == list(pd.read_parquet(_naive_export(naive, tmp_path)).columns)
    mine = _naive_slots(buf, index, live)
    np.testing.assert_array_equal(np.stack(df["obs"].to_numpy()).reshape(-1, *SHAPE), naive.obs[mine])
    np.testing.assert_array_equal(
        np.stack(df["next_obs"].to_numpy()).reshape(-1, *SHAPE), naive.next_obs[mine]
    )
    np.testing.assert_allclose(df["priority"].to_numpy(), buf.priorities(live))
    with pytest.raises(SnapshotError, match="not an adl-replay-1 snapshot"):
        read_replay(
            ReplayBuffer(_cfg(150, "prioritized"), SHAPE, np.dtype(np.uint8)), tmp_path / "replay.arrow"
        )
    with pytest.raises(SnapshotError, match="not an adl-pixel-replay-1 snapshot"):
        read_replay(buf, tmp_path / "naive.arrow")


def _naive_export(naive: ReplayBuffer, tmp_path) -> str:
    write_replay(naive, tmp_path / "naive.arrow")
    export_parquet(tmp_path / "naive.arrow", tmp_path / "naive.parquet")
    return str(tmp_path / "naive.parquet")


def test_check_snapshot_follows_frame_ids_and_the_live_count(stream, tmp_path):
    """Issue #15, item 8: a frame-stack snapshot's ids must stay in the ring, in their slots, and its
    size must be the transitions it holds."""
    import json

    import pyarrow as pa
    import pyarrow.ipc as ipc

    from components.replay.snapshot_check import SnapshotSpec, check_snapshot

    buf = PixelReplayBuffer(_cfg(150, "prioritized"), stack=4)
    for push, _ in stream:
        buf.add(push)
    path = tmp_path / "replay.arrow"
    write_replay(buf, path)
    good = path.read_bytes()
    spec = SnapshotSpec(150, "prioritized", 0.6, SHAPE, "|u1", n_actions=6, max_n=3, frame_stack=True)
    assert check_snapshot(path, spec)["size"] == len(buf)
    live = int(np.flatnonzero(buf.frames.has_transition)[0])

    def rewrite(change):
        table = ipc.open_file(pa.BufferReader(good)).read_all()
        table, meta = change(table, json.loads(table.schema.metadata[b"adl"]))
        table = table.replace_schema_metadata({"adl": json.dumps(meta)})
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    def ids(name, value):
        def change(t, m):
            flat = t[name].combine_chunks().values.to_numpy().copy()
            flat[live * 4] = value
            col = pa.FixedSizeListArray.from_arrays(pa.array(flat), 4)
            return t.set_column(t.schema.get_field_index(name), name, col), m

        return change

    def frame_id(t, m):
        fid = t["frame_id"].to_numpy().copy()
        fid[live] += 1  # a frame of the next slot
        return t.set_column(t.schema.get_field_index("frame_id"), "frame_id", pa.array(fid)), m

    for change, needle in [
        (ids("obs_ids", 10**9), "column 'obs_ids' holds frame ids outside [0,"),
        (ids("next_ids", -5), "column 'next_ids' holds frame ids outside [0,"),
        (frame_id, f"column 'frame_id' holds {int(buf.frames.frame_id[live]) + 1} in slot {live}"),
        (lambda t, m: (t, {**m, "size": m["size"] + 3}), "is not the"),
        (
            lambda t, m: (t, {**m, "frame_ids": [[0, 0, 0, 0]]}),
            "metadata field 'frame_ids' has a bad segment",
        ),
    ]:
        rewrite(change)
        with pytest.raises(SnapshotError, match=re.escape(needle)):
            check_snapshot(path, spec)
    path.write_bytes(good)
    plain = SnapshotSpec(150, "prioritized", 0.6, SHAPE, "|u1", n_actions=6, max_n=3)
    with pytest.raises(SnapshotError, match="this run's replay stores whole observations"):
        check_snapshot(path, plain)
