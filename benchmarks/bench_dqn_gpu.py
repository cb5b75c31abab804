"""The DQN learner on a GPU against the same learner on one CPU thread, side by side in one script.

Two measures:
- learner updates/s (sample → Double-DQN loss → Adam step → priorities) on synthetic batches, for
  the CartPole MLP and the Nature-DQN CNN on 4×84×84 frames, ``cpu`` (one torch thread, as adl's
  learner runs) against ``cuda``; plain torch, no Ray;
- CartPole end to end on a local Ray: the learner in the driver on the CPU against the learner in
  an actor holding half a GPU (``learner.device=cuda learner.num_gpus=0.5``): wall seconds to a greedy
  evaluation ≥ 475 and the update rate.

Needs a CUDA GPU; writes benchmarks/results/dqn_gpu.json (or --out).

    .venv/bin/python benchmarks/bench_dqn_gpu.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.config import load  # noqa: E402
from components.replay.batch import SampledBatch  # noqa: E402
from components.rl.dqn.config import DQNConfig  # noqa: E402
from components.rl.dqn.learner import Learner  # noqa: E402
from components.rl.dqn.networks import build_q_network  # noqa: E402


def updates_per_s(config: str, obs_shape: tuple[int, ...], dtype: type, device: str, batch: int) -> float:
    cfg = load(DQNConfig, REPO / config, [f"learner.device={device}", f"learner.batch_size={batch}"])
    torch.manual_seed(0)
    learner = Learner(build_q_network(cfg.network, obs_shape, 6), cfg.learner)
    rng = np.random.default_rng(0)

    def make() -> SampledBatch:
        obs = rng.integers(0, 255, (batch, *obs_shape)).astype(dtype)
        nxt = rng.integers(0, 255, (batch, *obs_shape)).astype(dtype)
        return SampledBatch(
            obs,
            rng.integers(0, 6, batch),
            rng.random(batch, dtype=np.float32),
            nxt,
            rng.random(batch) < 0.05,
            np.full(batch, 3, np.uint8),
            np.arange(batch),
            np.ones(batch, np.float32),
        )

    batches = [make() for _ in range(8)]
    for b in batches[:4]:  # warm-up (cuDNN autotuning, allocator)
        learner.step(b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        learner.step(batches[n % len(batches)])  # returns |δ| on the CPU: synchronises every step
        n += 1
    return n / (time.perf_counter() - t0)


CARTPOLE_RUN = r"""
import json, sys, time
t0 = time.time()
from components.config import load
from components.rl.dqn.config import DQNConfig
from pipelines.dqn_run import run_dqn
from pipelines.tracking import NullTracker
cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", sys.argv[1:])
res, _ = run_dqn(cfg, NullTracker(), progress=False, t_start=t0)
print(json.dumps({"solved_s": res.solved_at_s, "env_steps": res.env_steps, "updates": res.learner_steps,
                  "wall_s": res.wall_s, "best_eval": res.best_eval}))
"""


def cartpole(sets: list[str]) -> dict:
    args = [sys.executable, "-c", CARTPOLE_RUN, "num_cpus=4", "max_time_s=150", *sets]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["updates_per_s"] = out["updates"] / out["wall_s"]
    out["stderr_learner_line"] = [ln for ln in proc.stderr.splitlines() if "learner actor" in ln]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/dqn_gpu.json"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_dqn_gpu: needs a CUDA GPU")
    torch.set_num_threads(1)
    rows = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "updates_per_s": {}}
    for name, config, shape, dtype, batch in [
        ("mlp_cartpole_b64", "configs/dqn/cartpole.yaml", (4,), np.float32, 64),
        ("cnn_pong_b32", "configs/dqn/pong.yaml", (4, 84, 84), np.uint8, 32),
        ("cnn_pong_b256", "configs/dqn/pong.yaml", (4, 84, 84), np.uint8, 256),
    ]:
        cpu = updates_per_s(config, shape, dtype, "cpu", batch)
        gpu = updates_per_s(config, shape, dtype, "cuda", batch)
        rows["updates_per_s"][name] = {"cpu_1_thread": cpu, "cuda": gpu, "ratio": gpu / cpu}
        print(f"{name}: cpu {cpu:.0f}/s, cuda {gpu:.0f}/s ({gpu / cpu:.1f}x)", flush=True)
    rows["cartpole_driver_cpu"] = cartpole(["learner.device=cpu"])
    print("cartpole, learner in the driver on cpu:", rows["cartpole_driver_cpu"], flush=True)
    rows["cartpole_actor_cuda_half"] = cartpole(["learner.device=cuda", "learner.num_gpus=0.5"])
    print("cartpole, learner actor on half a GPU:", rows["cartpole_actor_cuda_half"], flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
