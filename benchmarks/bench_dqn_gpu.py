"""The DQN learner and Ape-X Pong on one GPU, side by side in one script.

Parts (``--parts``, all by default):

- ``learner``: updates/s of adl's ``Learner`` as the learner cycle drives it — host batches staged
  through pinned memory on a side stream, 8 updates per call, one read-back of their priorities and
  metrics per call, the update replayed as a CUDA graph (``learner.cuda_graph: auto``), and again with
  ``cuda_graph: false`` — against a bare eager loop of the same network, loss and Adam with the data
  already on the device, and that same bare update replayed as a CUDA graph (``dqn_bare.py``). CartPole
  MLP (dueling 128) at batch 64, Nature CNN on 4×84×84 at 32 and 256 (1024 with ``--big``). Sides
  alternate, each repetition timed with the device drained before and after; medians are reported.
  Target (DESIGN.md): adl ≥ 0.8× the graphed bare update.
- ``pong``: ``configs/dqn/pong_gpu.yaml`` for ``--pong-budget-s`` seconds of wall clock; greedy
  evaluation return against wall time and env steps, as JSON and a PNG (``dqn_pong_curve.py``).
- ``devices``: the earlier table, ``Learner.step`` on one CPU thread against CUDA.
- ``cartpole``: CartPole end to end, learner in the driver on the CPU against a learner actor on half
  a GPU (seconds to a greedy 475).

    .venv/bin/python benchmarks/bench_dqn_gpu.py                          # the GPU machine
    .venv/bin/python benchmarks/bench_dqn_gpu.py --device cpu --quick     # a smoke run on a CPU

Writes benchmarks/results/dqn_gpu.json (``--out``), rewritten after every finished row (``"complete":
false`` until the end), and the Pong curve as a PNG beside it (dqn_gpu.png); ``--quick`` writes
*.quick.*.tmp files (git-ignored: a CPU smoke run measures nothing worth keeping, and is no GPU figure).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dqn_bare import BareUpdate, device_batches, eager_runner, graphed_runner  # noqa: E402
from benchmarks.dqn_pong_curve import plot_curve, pong_curve  # noqa: E402
from benchmarks.partial_json import save  # noqa: E402
from components.config import load  # noqa: E402
from components.device import resolve_device, synchronize  # noqa: E402
from components.replay.batch import SampledBatch  # noqa: E402
from components.rl.dqn.config import DQNConfig  # noqa: E402
from components.rl.dqn.cycle import learner_cycle  # noqa: E402
from components.rl.dqn.learner import Learner  # noqa: E402
from components.rl.dqn.networks import build_q_network  # noqa: E402

Runner = Callable[[int], int]  # run(n updates) -> updates done
CASES = {  # name: (config, obs shape, obs dtype, batch)
    "mlp_cartpole_b64": ("configs/dqn/cartpole.yaml", (4,), np.float32, 64),
    "cnn_pong_b32": ("configs/dqn/pong_gpu.yaml", (4, 84, 84), np.uint8, 32),
    "cnn_pong_b256": ("configs/dqn/pong_gpu.yaml", (4, 84, 84), np.uint8, 256),
    "cnn_pong_b1024": ("configs/dqn/pong_gpu.yaml", (4, 84, 84), np.uint8, 1024),
    "cnn_pong_b8": ("configs/dqn/pong_gpu.yaml", (4, 84, 84), np.uint8, 8),  # --quick: the CNN's path, small
}
K = 8  # batches per learner call, as configs/dqn/pong_gpu.yaml


def host_batches(shape: tuple[int, ...], dtype: type, batch: int, n: int = K) -> list[SampledBatch]:
    rng = np.random.default_rng(0)

    def obs() -> np.ndarray:
        return rng.integers(0, 255, (batch, *shape)).astype(dtype)

    return [
        SampledBatch(
            obs(),
            rng.integers(0, 6, batch),
            rng.random(batch, dtype=np.float32),
            obs(),
            rng.random(batch) < 0.05,
            np.full(batch, 3, np.uint8),
            np.arange(batch),
            np.ones(batch, np.float32),
        )
        for _ in range(n)
    ]


class _Source:
    def __init__(self, batches: list[SampledBatch]) -> None:
        self.batches = batches

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        return self.batches[:count]

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        pass


def adl_runner(cfg: DQNConfig, shape: tuple[int, ...], batches: list[SampledBatch]) -> Runner:
    torch.manual_seed(0)
    learner = Learner(build_q_network(cfg.network, shape, 6), cfg.learner)
    source = _Source(batches)

    def run(n: int) -> int:
        for _ in range(max(1, n // K)):
            learner_cycle(learner, source, K, 0.4, 10**9, lambda: None)
        return max(1, n // K) * K

    return run


def timed(run: Runner, n: int, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    done = run(n)
    synchronize(device)
    return done / (time.perf_counter() - t0)


def learner_case(name: str, device: torch.device, seconds: float, reps: int, tf32: bool) -> dict[str, Any]:
    config, shape, dtype, batch = CASES[name]
    sets = [f"learner.device={device}", f"learner.batch_size={batch}", f"learner.tf32={str(tf32).lower()}"]
    batches = host_batches(shape, dtype, batch)
    host = [(b.obs, b.action, b.reward, b.done, b.n, b.next_obs, b.weight) for b in batches]
    cfg = load(DQNConfig, REPO / config, sets)
    torch.manual_seed(0)
    sides: dict[str, Runner] = {
        "bare_eager": eager_runner(
            BareUpdate(build_q_network(cfg.network, shape, 6), device, cfg.learner.lr),
            device_batches(host, device),
        )
    }
    if device.type == "cuda":
        bare = BareUpdate(build_q_network(cfg.network, shape, 6), device, cfg.learner.lr, capturable=True)
        sides["bare_graph"] = graphed_runner(bare, device_batches(host, device))
    sides["adl"] = adl_runner(cfg, shape, batches)
    if device.type == "cuda":
        sides["adl_eager"] = adl_runner(
            load(DQNConfig, REPO / config, [*sets, "learner.cuda_graph=false"]), shape, batches
        )
    steps = {}
    for side, run in sides.items():
        run(2 * K)  # warm-up: allocator, cuDNN autotuning, Adam state, the graph's capture
        steps[side] = max(K, int(timed(run, K, device) * seconds))
    rates: dict[str, list[float]] = {s: [] for s in sides}
    for rep in range(reps):
        for side in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
            rates[side].append(timed(sides[side], steps[side], device))
    out: dict[str, Any] = {s: statistics.median(v) for s, v in rates.items()}
    out["reps"] = rates
    for ref in ("bare_eager", "bare_graph"):
        if ref in out:
            out[f"adl_over_{ref}"] = out["adl"] / out[ref]
    cells = ", ".join(f"{s} {out[s]:.0f}/s" for s in sides)
    print(f"{name}: {cells}", flush=True)
    return out


CARTPOLE_RUN = r"""
import json, sys, time
t0 = time.time()
from components.config import load
from components.rl.dqn.config import DQNConfig
from pipelines.dqn.run import run_dqn
from pipelines.tracking import NullTracker
cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", sys.argv[1:])
res, _ = run_dqn(cfg, NullTracker(), progress=False, t_start=t0)
print(json.dumps({"solved_s": res.solved_at_s, "env_steps": res.env_steps, "updates": res.learner_steps,
                  "wall_s": res.wall_s, "best_eval": res.best_eval}))
"""


def cartpole(sets: list[str]) -> dict[str, Any]:
    args = [sys.executable, "-c", CARTPOLE_RUN, "num_cpus=4", "max_time_s=150", *sets]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["updates_per_s"] = out["updates"] / out["wall_s"]
    out["stderr_learner_line"] = [ln for ln in proc.stderr.splitlines() if "learner actor" in ln]
    return out


def step_rate(name: str, device: str) -> float:
    """The earlier measure: ``Learner.step`` (one batch, one read-back) on synthetic batches."""
    config, shape, dtype, batch = CASES[name]
    cfg = load(DQNConfig, REPO / config, [f"learner.device={device}", f"learner.batch_size={batch}"])
    torch.manual_seed(0)
    learner = Learner(build_q_network(cfg.network, shape, 6), cfg.learner)
    batches = host_batches(shape, dtype, batch)
    for b in batches[:4]:
        learner.step(b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        learner.step(batches[n % len(batches)])
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N (default cuda)")
    ap.add_argument("--quick", action="store_true", help="short repetitions, small cases: a smoke run")
    ap.add_argument("--parts", nargs="+", choices=["learner", "pong", "devices", "cartpole"])
    ap.add_argument("--big", action="store_true", help="also the Nature CNN at batch 1024")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one timed repetition")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions per side")
    ap.add_argument("--no-tf32", action="store_true", help="fp32 matmuls/convolutions without TF32")
    ap.add_argument("--pong-budget-s", type=float, default=900.0, help="wall-clock budget of the Pong run")
    ap.add_argument("--pong-eval-every", type=int, default=100_000, help="env steps between evaluations")
    ap.add_argument("--pong-set", nargs="*", default=[], help="extra --set overrides for the Pong run")
    ap.add_argument("--out", default="", help="the JSON (rewritten after every row); the PNG goes beside it")
    args = ap.parse_args()
    device = resolve_device(args.device, "--device")
    cuda = device.type == "cuda"
    parts = args.parts or (["learner", "pong"] if args.quick else ["learner", "pong", "devices", "cartpole"])
    suffix = ".quick" if args.quick else ""
    results_dir = REPO / "benchmarks/results"
    out_path = (
        Path(args.out) if args.out else results_dir / f"dqn_gpu{suffix}.json{'.tmp' if args.quick else ''}"
    )
    png = out_path.with_name(
        out_path.name.replace(".json", ".png") if ".json" in out_path.name else "pong.png"
    )
    torch.set_num_threads(1)
    tf32 = not args.no_tf32
    if cuda:  # process-wide: every side runs with the same setting (recorded below)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    rows: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "tf32": tf32 if cuda else None,
        "batches_per_call": K,
    }
    save(out_path, rows)
    if "learner" in parts:
        names = ["mlp_cartpole_b64", "cnn_pong_b8"] if args.quick else list(CASES)[: 4 if args.big else 3]
        seconds, reps = (0.3, 1) if args.quick else (args.seconds, args.reps)
        table: dict[str, Any] = {}
        rows["learner_updates_per_s"] = table
        for n in names:
            table[n] = learner_case(n, device, seconds, reps, tf32)
            save(out_path, rows)
    if "pong" in parts:
        budget = min(args.pong_budget_s, 25.0) if args.quick else args.pong_budget_s
        every = 1000 if args.quick else args.pong_eval_every
        extra = [] if cuda or args.quick else ["learner.device=cpu"]

        def so_far(curve: dict[str, Any]) -> None:
            rows["pong"] = {"budget_s": budget, **curve}
            save(out_path, rows)

        pong = pong_curve(budget, every, args.quick, [*extra, *args.pong_set], so_far)
        rows["pong"] = pong
        save(out_path, rows)
        plot_curve(pong, png, f"Ape-X Pong, {rows['gpu'] or 'CPU smoke run'}: greedy return")
        rows["pong_png"] = str(png)
        print(
            f"pong: {pong['env_steps']} env steps, {pong['learner_steps']} updates, best {pong['best_eval']}"
        )
    if "devices" in parts and cuda:
        rows["cpu_vs_cuda_step"] = {}
        for n in list(CASES)[:3]:
            rows["cpu_vs_cuda_step"][n] = {"cpu_1_thread": step_rate(n, "cpu"), "cuda": step_rate(n, "cuda")}
            save(out_path, rows)
    if "cartpole" in parts and cuda:
        rows["cartpole_driver_cpu"] = cartpole(["learner.device=cpu"])
        save(out_path, rows)
        rows["cartpole_actor_cuda_half"] = cartpole(["learner.device=cuda", "learner.num_gpus=0.5"])
    save(out_path, rows, complete=True)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
