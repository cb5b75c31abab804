"""Replay throughput: adl against RLlib's prioritized buffer and a plain multiprocessing collector.

1. Prioritized sample + priority update at batch 256 from a full 1M-transition buffer (CartPole-sized
   transitions): adl's ``ReplayBuffer`` (vectorised numpy sum tree) against RLlib 2.60's
   ``PrioritizedEpisodeReplayBuffer``. RLlib ingests episodes at ~1.6k transitions/s at this capacity
   (DESIGN.md), so it is filled with ``--rllib-fill`` transitions (default 20k) in a 1M-capacity
   buffer; its per-sample cost does not shrink with a fuller buffer.
2. Collection into the shared replay with learning off: adl's Ray wiring (2 collector actors × 8
   CartPole envs pushing into the replay actor) against a plain ``multiprocessing`` baseline (2
   processes × 8 envs, the same ε-greedy Q-network forward per step, transitions sent through a pipe
   to a consumer that writes them into a numpy ring). Reported: transitions stored per second.

    .venv/bin/python benchmarks/bench_replay.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cartpole_transitions(n: int, rng: np.random.Generator):
    from components.replay.batch import Transitions

    obs = rng.standard_normal((n, 4)).astype(np.float32)
    return Transitions(
        obs,
        rng.integers(0, 2, n),
        np.ones(n, np.float32),
        obs.copy(),
        np.zeros(n, bool),
        np.full(n, 3, np.uint8),
        rng.random(n).astype(np.float32),
        np.zeros(n, np.int16),
        np.zeros(n, np.int64),
        np.zeros(n, np.int32),
        np.zeros(n, bool),
    )


def bench_adl_prioritized(capacity: int, batch: int, seconds: float) -> float:
    from components.replay.buffer import ReplayBuffer, ReplayConfig

    rng = np.random.default_rng(0)
    buf = ReplayBuffer(ReplayConfig(capacity=capacity, kind="prioritized"), (4,), np.dtype(np.float32))
    for _ in range(capacity // 100_000):
        buf.add(cartpole_transitions(100_000, rng))
    assert len(buf) == capacity
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = buf.sample(batch, beta=0.4)
        buf.update_priorities(b.slots, rng.random(batch))
        n += batch
    return n / (time.perf_counter() - t0)


def bench_rllib_prioritized(capacity: int, fill: int, batch: int, seconds: float) -> float:
    import gymnasium as gym
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode
    from ray.rllib.utils.replay_buffers.prioritized_episode_buffer import PrioritizedEpisodeReplayBuffer

    rng = np.random.default_rng(0)
    buf = PrioritizedEpisodeReplayBuffer(capacity=capacity, alpha=0.6)
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    for _ in range(fill // 200):
        obs = list(rng.standard_normal((201, 4)).astype(np.float32))
        ep = SingleAgentEpisode(
            observations=obs,
            actions=list(rng.integers(0, 2, 200)),
            rewards=[1.0] * 200,
            observation_space=space,
            action_space=gym.spaces.Discrete(2),
            len_lookback_buffer=0,
        )
        buf.add([ep])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        buf.sample(num_items=batch, n_step=1, beta=0.4)
        buf.update_priorities(rng.random(batch))
        n += batch
    return n / (time.perf_counter() - t0)


# ---- collection -------------------------------------------------------------------------------


def _mp_worker(conn, seed: int, steps_per_push: int, stop_at: float) -> None:
    import gymnasium as gym
    import torch

    from components.nets.qnets import MLPQNetwork

    torch.set_num_threads(1)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1") for _ in range(8)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    net = MLPQNetwork(4, 2, [128], 128, True).eval()
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    while time.time() < stop_at:
        rows = []
        for _ in range(steps_per_push):
            with torch.no_grad():
                q = net(torch.as_tensor(obs)).numpy()
            a = np.where(rng.random(8) < 0.1, rng.integers(0, 2, 8), q.argmax(1))
            nxt, r, term, trunc, _ = envs.step(a)
            rows.append((obs, a, r, nxt, term))
            obs = nxt
        conn.send(tuple(np.concatenate(x) for x in zip(*rows)))
    conn.send(None)


def bench_mp_collection(seconds: float, steps_per_push: int) -> float:
    ring = np.zeros((200_000, 4), np.float32)
    stop_at = time.time() + seconds + 3  # workers start and import first
    pipes = [mp.Pipe(duplex=False) for _ in range(2)]
    procs = [
        mp.Process(target=_mp_worker, args=(w, i, steps_per_push, stop_at)) for i, (_, w) in enumerate(pipes)
    ]
    for p in procs:
        p.start()
    stored, cursor, t_first, open_pipes = 0, 0, None, [r for r, _ in pipes]
    while open_pipes:
        for r in list(open_pipes):
            if r.poll(0.01):
                msg = r.recv()
                if msg is None:
                    open_pipes.remove(r)
                    continue
                t_first = t_first or time.time()
                n = len(msg[1])
                idx = (cursor + np.arange(n)) % len(ring)
                ring[idx] = msg[0]
                cursor, stored = (cursor + n) % len(ring), stored + n
    elapsed = time.time() - t_first
    for p in procs:
        p.join()
    return stored / elapsed


def bench_adl_collection(seconds: float, steps_per_call: int) -> float:
    import ray

    from components.config import load
    from components.rl.dqn.config import DQNConfig
    from pipelines.distributed.ray_runtime import init_ray
    from pipelines.distributed.ray_wiring import RayWiring

    cfg = load(
        DQNConfig,
        REPO / "configs/dqn/cartpole.yaml",
        [
            f"collectors.steps_per_call={steps_per_call}",
            "replay.capacity=2000000",  # larger than anything stored here: size == transitions inserted
            "collectors.num_collectors=2",
            "collectors.envs_per_collector=8",
        ],
    )
    init_ray(num_cpus=2)
    wiring = RayWiring(cfg, (4,), np.float32, 2)
    ray.get([c.flush.remote() for c in wiring.collectors])  # actors are up
    refs = {c.run.remote(steps_per_call): c for c in wiring.collectors}
    t0, steps = time.time(), 0
    while time.time() - t0 < seconds:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for r in ready:
            c = refs.pop(r)
            steps += ray.get(r).transitions
            refs[c.run.remote(steps_per_call)] = c
    ray.get(list(refs))
    ray.get([c.flush.remote() for c in wiring.collectors])
    stored = ray.get(wiring.replay.size.remote())
    elapsed = time.time() - t0
    wiring.stop()
    ray.shutdown()
    return stored / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--capacity", type=int, default=1_000_000)
    ap.add_argument("--rllib-fill", type=int, default=20_000)
    ap.add_argument("--steps-per-call", type=int, default=128, help="vector steps per push (× 8 envs)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/replay.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    res: dict[str, float] = {}
    res["adl_prioritized_tps"] = bench_adl_prioritized(args.capacity, 256, args.seconds)
    res["rllib_prioritized_tps"] = bench_rllib_prioritized(args.capacity, args.rllib_fill, 256, args.seconds)
    # Collection: alternate the two so that a busy spell hits both.
    a, b = [], []
    for _ in range(2):
        a.append(bench_adl_collection(args.seconds, args.steps_per_call))
        b.append(bench_mp_collection(args.seconds, args.steps_per_call))
    res["adl_collection_tps"], res["mp_collection_tps"] = max(a), max(b)
    print("| measure | adl | reference | ratio |\n| --- | --- | --- | --- |")
    print(
        "| prioritized sample+update, batch 256, 1M buffer (transitions/s) | "
        f"{res['adl_prioritized_tps']:,.0f} | "
        f"{res['rllib_prioritized_tps']:,.0f} (RLlib, {args.rllib_fill:,} stored) | "
        f"{res['adl_prioritized_tps'] / res['rllib_prioritized_tps']:.0f}× |"
    )
    print(
        "| collection into the replay, 2 × 8 CartPole envs (transitions/s) | "
        f"{res['adl_collection_tps']:,.0f} | "
        f"{res['mp_collection_tps']:,.0f} (multiprocessing) | "
        f"{res['adl_collection_tps'] / res['mp_collection_tps']:.2f} |"
    )
    Path(args.out).write_text(json.dumps({**res, "args": vars(args), "load_avg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
