"""Checkpoint write and restore of the replay: adl's Arrow IPC snapshot against ``pickle`` of the same arrays.

1. A full 1M-transition CartPole replay (obs [4] float32, prioritized, sum tree of 2^20 leaves).
2. A 100k-frame Pong replay in ``FrameStorage`` (84×84 uint8 frames stored once, stacks by index).
   Frames are synthetic but Pong-like (flat background, two paddles and a ball at random places), so
   compression figures are indicative; real frames compress at least as well.

Each is written and restored ``--repeats`` times (best time kept) to a local folder, uncompressed
and with lz4, and compared with ``pickle.dump`` / ``pickle.load`` (protocol 5) of the same numpy
arrays. Restoring includes rebuilding the sum tree. Results go to ``benchmarks/results/checkpoint.json``.

    .venv/bin/python benchmarks/bench_checkpoint.py [--out-dir /tmp/adl-bench]
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.replay.buffer import ReplayBuffer, ReplayConfig
from components.replay.frame_storage import FrameStorage
from components.replay.snapshot import read_frames, read_replay, write_frames, write_replay

REPO = Path(__file__).resolve().parents[1]


def cartpole_replay(n: int) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(ReplayConfig(capacity=n), (4,), np.dtype(np.float32))
    buf.obs[:] = rng.normal(size=(n, 4)).astype(np.float32)
    buf.next_obs[:] = buf.obs + rng.normal(scale=0.05, size=(n, 4)).astype(np.float32)
    buf.action[:] = rng.integers(0, 2, n)
    buf.reward[:] = 1.0
    buf.done[:] = rng.random(n) < 0.01
    buf.n[:] = 3
    buf.collector[:] = rng.integers(0, 2, n)
    buf.episode[:] = np.arange(n) // 200
    buf.step[:] = np.arange(n) % 200
    assert buf.tree is not None
    buf.tree.set(np.arange(n), rng.random(n) ** 0.6)
    buf.size, buf.cursor, buf.inserts = n, n // 3, n + n // 3  # full and wrapped
    return buf


def pong_frames(n: int) -> FrameStorage:
    rng = np.random.default_rng(0)
    fs = FrameStorage(capacity=n, stack=4, num_envs=1)
    fs.frames[:] = 87  # Pong's brown background after grayscale
    for i in range(n):
        y1, y2, bx, by = rng.integers(10, 70, 4)
        fs.frames[i, y1 : y1 + 8, 8:10] = 147
        fs.frames[i, y2 : y2 + 8, 74:76] = 147
        fs.frames[i, by : by + 2, bx : bx + 2] = 236
    ids = np.arange(n, dtype=np.int64)
    fs.frame_id[:] = ids
    fs.obs_ids[:] = np.maximum(ids[:, None] - np.arange(3, -1, -1), 0)
    fs.next_ids[:] = np.minimum(fs.obs_ids + 1, n - 1)
    fs.has_transition[:] = True
    fs.dependents[:, 0] = np.minimum(ids + 3, n - 1)
    fs.written = n
    fs.history[0].extend(ids[-4:].tolist())
    return fs


def arrays_of(obj: Any) -> dict[str, Any]:
    if isinstance(obj, ReplayBuffer):
        assert obj.tree is not None
        names = (
            "obs",
            "next_obs",
            "action",
            "reward",
            "done",
            "truncated",
            "n",
            "collector",
            "episode",
            "step",
        )
        return {k: getattr(obj, k) for k in names} | {"tree": obj.tree.tree}
    names = ("frames", "frame_id", "obs_ids", "next_ids", "has_transition", "dependents")
    return {k: getattr(obj, k) for k in names}


def best(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name: str, obj: Any, fresh: Any, out: Path, repeats: int) -> dict[str, Any]:
    write, read = (
        (write_replay, read_replay) if isinstance(obj, ReplayBuffer) else (write_frames, read_frames)
    )
    res: dict[str, Any] = {"case": name, "raw_bytes": sum(a.nbytes for a in arrays_of(obj).values())}
    for comp in ("none", "lz4"):
        path = out / f"{name}_{comp}.arrow"
        res[f"arrow_{comp}_write_s"] = best(lambda p=path, c=comp: write(obj, p, c), repeats)
        res[f"arrow_{comp}_read_s"] = best(lambda p=path: read(fresh, p), repeats)
        res[f"arrow_{comp}_bytes"] = path.stat().st_size
    a, b = arrays_of(obj), arrays_of(fresh)
    for k in a:  # the restore was exact
        assert np.array_equal(a[k], b[k]), k
    pkl = out / f"{name}.pkl"

    def pickle_write() -> None:
        with open(pkl, "wb") as f:
            pickle.dump(arrays_of(obj), f, protocol=5)

    def pickle_read() -> None:
        with open(pkl, "rb") as f:
            pickle.load(f)

    res["pickle_write_s"] = best(pickle_write, repeats)
    res["pickle_read_s"] = best(pickle_read, repeats)
    res["pickle_bytes"] = pkl.stat().st_size
    for k in ("write_s", "read_s", "bytes"):
        res[f"ratio_arrow_none_to_pickle_{k}"] = res[f"arrow_none_{k}"] / res[f"pickle_{k}"]
        res[f"ratio_arrow_lz4_to_pickle_{k}"] = res[f"arrow_lz4_{k}"] / res[f"pickle_{k}"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="/tmp/adl-bench-checkpoint")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cartpole", type=int, default=1_000_000)
    ap.add_argument("--pong-frames", type=int, default=100_000)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        buf = cartpole_replay(args.cartpole)
        fresh = ReplayBuffer(buf.cfg, (4,), np.dtype(np.float32))
        rows.append(bench(f"cartpole_{args.cartpole}", buf, fresh, out, args.repeats))
        del buf, fresh
        fs = pong_frames(args.pong_frames)
        fresh_fs = FrameStorage(capacity=args.pong_frames, stack=4, num_envs=1)
        rows.append(bench(f"pong_{args.pong_frames}_frames", fs, fresh_fs, out, args.repeats))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for r in rows:
        print(
            f"{r['case']}: raw {r['raw_bytes'] / 1e6:.0f} MB | arrow write {r['arrow_none_write_s']:.2f}s "
            f"read {r['arrow_none_read_s']:.2f}s {r['arrow_none_bytes'] / 1e6:.0f} MB | arrow+lz4 write "
            f"{r['arrow_lz4_write_s']:.2f}s read {r['arrow_lz4_read_s']:.2f}s "
            f"{r['arrow_lz4_bytes'] / 1e6:.0f} MB | pickle write {r['pickle_write_s']:.2f}s "
            f"read {r['pickle_read_s']:.2f}s "
            f"{r['pickle_bytes'] / 1e6:.0f} MB"
        )
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "checkpoint.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
