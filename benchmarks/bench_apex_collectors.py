"""Ape-X collection on one node: Pong env steps/s into the shared replay for 1, 2, 4, 8, 14 collectors.

Each count gets a fresh RayWiring of ``configs/dqn/pong_gpu.yaml`` (the collectors, the pixel replay
actor and, with ``--inference gpu``, the shared inference actor) on one local Ray; the weights of a
freshly built network are published once; the wiring is polled as the DQN loop polls it, with no
learner and a limiter that never holds the collectors back, so this measures collection alone:
stepping, ε-greedy inference, n-step windows, initial priorities and the pushes into the replay. After
``--warmup-s`` the env steps the collectors report over ``--seconds`` are counted.

Scaling efficiency of N collectors = rate(N) / (N · rate(1)) (rate(first count) / first count when the
list does not start at 1). DESIGN.md measured plain Pong processes
(random actions, no inference) at 1.9k → 20.4k agent steps/s from 1 to 14 processes on the 16-core
GPU machine; the Nature CNN on one CPU thread costs about as much as the emulator, which is what
``--inference gpu`` (one inference actor answering every collector in batches) is meant to remove.

    .venv/bin/python benchmarks/bench_apex_collectors.py --inference local gpu   # the GPU machine
    .venv/bin/python benchmarks/bench_apex_collectors.py --quick                 # a smoke run here

Writes benchmarks/results/apex_collectors.json (``--out``), rewritten after every count (``"complete":
false`` until the end); ``--quick``: apex_collectors.quick.json.tmp, ignored.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.partial_json import save  # noqa: E402
from components.config import load  # noqa: E402
from components.rl.dqn.config import DQNConfig  # noqa: E402
from components.rl.dqn.env_factory import check_spaces  # noqa: E402
from components.rl.dqn.networks import build_q_network, get_flat_weights  # noqa: E402

INFERENCE_GPUS = 0.25  # the inference actor's GPU share when there is a GPU


class Unlimited:
    """A samples-per-insert limiter that always lets collectors insert (there is no learner here)."""

    def can_insert(self, n: int) -> bool:
        return True


def measure(cfg: DQNConfig, warmup_s: float, seconds: float) -> dict[str, Any]:
    import ray

    from pipelines.distributed.ray_wiring import RayWiring

    obs_shape, obs_dtype, n_actions = check_spaces(cfg)
    wiring = RayWiring(cfg, obs_shape, obs_dtype, n_actions)
    limiter = Unlimited()
    try:
        # Every actor up (started, envs made) before the clock: a killed run's CPUs free up lazily.
        ray.get([c.pid.remote() for c in wiring.collectors] + [wiring.replay.pid.remote()])
        wiring.publish(get_flat_weights(build_q_network(cfg.network, obs_shape, n_actions)))
        t_end_warm = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end_warm:
            wiring.poll(limiter)  # type: ignore[arg-type]
            wiring.idle()
        steps, t0 = [0] * len(wiring.collectors), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for stats in wiring.poll(limiter):  # type: ignore[arg-type]
                steps[stats.collector] += stats.env_steps
            wiring.idle()
        elapsed = time.perf_counter() - t0
        out: dict[str, Any] = {
            "env_steps": sum(steps),
            "seconds": elapsed,
            "env_steps_per_s": sum(steps) / elapsed,
            "per_collector_env_steps": steps,  # a collector that never ran shows as 0
        }
        if wiring.inference is not None:
            out["inference_stats"] = ray.get(wiring.inference.stats.remote())
        return out
    finally:
        wiring.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collectors", default="", help="comma-separated collector counts (default 1,2,4,8,14)")
    ap.add_argument("--inference", nargs="+", choices=["local", "gpu"], default=["local"])
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per count (default 20)")
    ap.add_argument("--warmup-s", type=float, default=None, help="seconds before counting (default 5)")
    ap.add_argument("--set", nargs="*", default=[], dest="sets", help="extra config overrides")
    ap.add_argument("--quick", action="store_true", help="1 and 2 collectors, a few seconds: a smoke run")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    counts = [int(c) for c in args.collectors.split(",")] if args.collectors else [1, 2, 4, 8, 14]
    if args.quick and not args.collectors:
        counts = [1, 2]
    default_seconds, default_warmup = (3.0, 2.0) if args.quick else (20.0, 5.0)
    seconds = default_seconds if args.seconds is None else args.seconds
    warmup = default_warmup if args.warmup_s is None else args.warmup_s
    results_dir = REPO / "benchmarks/results"
    out_path = (
        Path(args.out)
        if args.out
        else results_dir / ("apex_collectors.quick.json.tmp" if args.quick else "apex_collectors.json")
    )
    import ray

    cpus = os.cpu_count() or 2
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpu = gpus > 0
    # GPUs named explicitly: Ray's own detection may miss a GPU torch sees (then an inference actor
    # asking for a share of one would wait for it forever).
    ray.init(address="local", num_cpus=max(cpus, max(counts)), num_gpus=gpus, include_dashboard=False)
    if gpu and "gpu" in args.inference and ray.cluster_resources().get("GPU", 0.0) < INFERENCE_GPUS:
        ray.shutdown()
        sys.exit(
            f"bench_apex_collectors.py: torch sees {gpus} GPU(s) but Ray does not; --inference gpu needs one"
        )
    rows: dict[str, Any] = {
        "cpus": cpus,
        "gpu": torch.cuda.get_device_name() if gpu else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "seconds": seconds,
        "runs": [],
    }
    save(out_path, rows)
    try:
        for inference in args.inference:
            base: float | None = None
            for n in counts:
                sets = [
                    f"collectors.num_collectors={n}",
                    f"collectors.inference={inference}",
                    f"collectors.inference_gpus={INFERENCE_GPUS if gpu else 0}",
                    "replay.capacity=200000",  # the replay's size does not change the collection rate
                    "learner.device=cpu",  # no learner runs; keep the config valid without a GPU
                    *args.sets,
                ]
                cfg = load(DQNConfig, REPO / "configs/dqn/pong_gpu.yaml", sets)
                row = {"collectors": n, "inference": inference, **measure(cfg, warmup, seconds)}
                base = base if base is not None else row["env_steps_per_s"] / n
                row["per_collector"] = row["env_steps_per_s"] / n
                row["efficiency"] = row["env_steps_per_s"] / (n * base)
                rows["runs"].append(row)
                save(out_path, rows)
                print(
                    f"{inference:5s} {n:2d} collectors: {row['env_steps_per_s']:8.0f} env steps/s, "
                    f"efficiency {row['efficiency']:.2f}",
                    flush=True,
                )
    finally:
        ray.shutdown()
    save(out_path, rows, complete=True)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
