"""Several trials sharing one GPU through Ray's fractional GPUs, against one trial alone.

What a sweep at ``resources: {gpu: 0.25}`` does to the GPU, without Tune's bookkeeping or MLflow: N Ray
actors, each asking for ``1/N`` of a GPU (Ray gives each the same ``CUDA_VISIBLE_DEVICES``) and
``--cpus`` CPUs, each build adl's trainer with ``train.device: auto`` (so each trains on the GPU Ray
assigned it) and run it for the same ``--seconds`` from a common start. The baseline is one such
actor alone. Reported: each trial's rate, the aggregate (their sum) and aggregate / alone; issue #12's
target is ≥ 2.5× for four trials. Tune's own cost per trial is ``bench_trial_overhead.py``'s.

Cases (the sizes of ``bench_gpu_trials.py``): ring8 WGAN-GP (3×128 MLPs, batch 256, n_critic 5;
generator steps/s, one evaluation per chunk of 100 steps, as a trial reports) and the LSTM character
model (B64 T128 H256, 2 layers, fused; tokens/s).

    .venv/bin/python benchmarks/bench_gpu_packing.py                       # on a GPU machine, ~2 minutes
    .venv/bin/python benchmarks/bench_gpu_packing.py --device cpu --quick  # a smoke run on CPUs

Writes benchmarks/results/gpu_packing.json (``--out``), rewritten after each case (``"complete": false``
until the end); ``--quick``: gpu_packing.quick.json.tmp, git-ignored.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

CHUNK = {"ring8": 100, "lstm": 20}  # steps per call: a trial's report interval, roughly


class Trial:
    """One trial's trainer in a Ray actor (wrapped with ``ray.remote`` in :func:`measure`)."""

    def __init__(self, case: str, device: str, quick: bool, threads: int) -> None:
        sys.path[:0] = [str(REPO), str(HERE)]
        import bench_gpu_trials as b

        from components.config import build
        from components.device import resolve_device
        from components.gan.config import GanConfig

        sizes = b.QUICK if quick else b.Sizes()
        if case == "ring8":
            raw = b.gan_config("ring8", sizes.ring8_batch, "fp32", device, sizes)
            raw["train"]["threads"] = threads
            self.run = b.adl_gan(build(GanConfig, raw), None, [])
        else:
            self.run = b.adl_seq("lstm", "fused", "fp32", device, sizes)
        self.device = resolve_device(device)
        self.chunk = 5 if quick else CHUNK[case]
        self.run(2)  # allocator, cuDNN autotuning, optimiser state

    def where(self) -> str:
        import torch

        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    def measure(self, start_at: float, seconds: float) -> float:
        """Units per second over ``seconds`` of chunks, begun at the common wall-clock ``start_at``."""
        from components.device import synchronize

        time.sleep(max(0.0, start_at - time.time()))
        units, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            units += self.run(self.chunk)
        synchronize(self.device)
        return units / (time.perf_counter() - t0)


def measure(case: str, n: int, args: argparse.Namespace, gpu_share: float) -> dict[str, Any]:
    """``n`` trials at ``gpu_share`` each, started together; their rates and where they ran."""
    import ray

    actor = ray.remote(Trial).options(num_cpus=args.cpus, num_gpus=gpu_share)
    trials = [
        actor.remote(case, "auto" if args.device == "cuda" else args.device, args.quick, args.cpus)
        for _ in range(n)
    ]
    where = ray.get([t.where.remote() for t in trials])  # built and warmed up
    start = time.time() + 0.5  # every trial's clock starts together
    rates = ray.get([t.measure.remote(start, args.seconds) for t in trials])
    for t in trials:
        ray.kill(t)
    return {"trials": n, "gpu_share": gpu_share, "devices": where, "rates": rates, "aggregate": sum(rates)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--trials", type=int, default=4, help="trials sharing the GPU (each asks 1/N of it)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs (and torch threads) per trial")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per configuration (15)")
    ap.add_argument("--cases", nargs="+", choices=["ring8", "lstm"], default=["ring8", "lstm"])
    ap.add_argument(
        "--quick", action="store_true", help="tiny models, 2 trials, 2 s (unless --seconds): a smoke run"
    )
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.quick:
        args.trials = 2
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 15.0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("bench_gpu_packing.py: --device cuda, but torch sees no GPU (--device cpu: a smoke run)")
    from benchmarks.partial_json import save
    from pipelines.distributed.ray_runtime import init_ray

    gpus = 1 if args.device == "cuda" else 0
    init_ray(num_cpus=max(os.cpu_count() or 1, args.cpus * args.trials), num_gpus=gpus)
    share = 1.0 / args.trials if gpus else 0.0
    results: dict[str, Any] = {
        "device": args.device,
        "python": platform.python_version(),
        "cpus_per_trial": args.cpus,
        "seconds": args.seconds,
        "quick": args.quick,
    }
    out = (
        Path(args.out)
        if args.out
        else REPO
        / "benchmarks/results"
        / ("gpu_packing.quick.json.tmp" if args.quick else "gpu_packing.json")
    )
    save(out, results)
    unit = {"ring8": "generator steps/s", "lstm": "tokens/s"}
    for case in args.cases:
        alone = measure(case, 1, args, share)
        packed = measure(case, args.trials, args, share)
        ratio = packed["aggregate"] / alone["aggregate"]
        results[case] = {"unit": unit[case], "alone": alone, "packed": packed, "aggregate_over_alone": ratio}
        print(
            f"{case}: one trial {alone['aggregate']:,.0f} {unit[case]}; {args.trials} trials at "
            f"{share:g} GPU each {packed['aggregate']:,.0f} together ({ratio:.2f}x), on "
            f"{packed['devices'][0]}",
            flush=True,
        )
        save(out, results)
    save(out, results, complete=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
