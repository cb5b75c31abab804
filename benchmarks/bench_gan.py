"""GAN trainer speed against a bare torch loop, and the cost of running it as a Tune trial with MLflow.

1. Generator steps/s of adl's WGAN-GP trainer (ring8, 3×128 MLPs, batch 256, n_critic 5) against a
   bare torch loop of the same networks, optimiser, batch and data sampling, written the way one
   writes it by hand. The two alternate in one process (interleaved repetitions), so a busy machine
   slows both alike; the ratio is what to read. "train" counts only the training steps, "run" also
   the per-report evaluation that ``adl train`` does (every 250 steps).
2. Tune + MLflow overhead: the same trainer for a fixed number of steps run directly (no tracking)
   and as a one-trial ``adl sweep`` (Ray Tune trial, child MLflow run, a sample PNG and a checkpoint
   at every report). Reported: the trial's own wall clock and the whole command's, against direct.

    .venv/bin/python benchmarks/bench_gan.py               # both parts
    .venv/bin/python benchmarks/bench_gan.py --part loop --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from components.config import build
from components.gan.config import GanConfig
from components.gan.data import make_source
from components.gan.trainer import GanTrainer

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/gan/ring8_wgan_gp.yaml"


def bare_loop(cfg: GanConfig, steps: int) -> tuple[float, float]:
    """The same WGAN-GP as a plain loop; returns generator steps per wall second and per CPU second."""
    torch.manual_seed(cfg.seed)
    h, z_dim, b = cfg.model.hidden, cfg.model.z_dim, cfg.train.batch_size
    G = torch.nn.Sequential(
        torch.nn.Linear(z_dim, h),
        torch.nn.ReLU(),
        torch.nn.Linear(h, h),
        torch.nn.ReLU(),
        torch.nn.Linear(h, h),
        torch.nn.ReLU(),
        torch.nn.Linear(h, 2),
    )
    D = torch.nn.Sequential(
        torch.nn.Linear(2, h),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(h, h),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(h, h),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(h, 1),
    )
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    source = make_source(cfg.data)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        for _ in range(cfg.n_critic):
            real = source.sample(b, gen)
            with torch.no_grad():
                fake = G(torch.randn(b, z_dim, generator=gen))
            alpha = torch.rand(b, 1, generator=gen)
            x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
            loss_d = D(fake).mean() - D(real).mean() + cfg.train.gp_weight * gp
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        loss_g = -D(G(torch.randn(b, z_dim, generator=gen))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def adl_trainer(cfg: GanConfig, steps: int) -> tuple[float, float, float]:
    """(training-only steps/s, steps/s including the per-report evaluation, the latter per CPU second)."""
    t = GanTrainer(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    rates = []
    while t.position < steps:
        m = t.run_chunk()
        rates.append((m["gen_steps_per_s"], cfg.report_every))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    train_rate = sum(n for _, n in rates) / sum(n / r for r, n in rates)
    return train_rate, steps / wall, steps / cpu


def part_loop(reps: int, steps: int) -> None:
    data = yaml.safe_load(CONFIG.read_text())
    data.update({"report_every": 250})
    data["train"].update({"threads": 1, "device": "cpu"})  # the bare loop runs on the CPU
    data["train"]["steps"] = steps
    cfg = build(GanConfig, data)
    bare, train, run, bare_cpu, run_cpu = [], [], [], [], []
    for i in range(reps):  # interleaved: bare, adl, bare, adl, ...
        bw, bc = bare_loop(cfg, steps)
        tr, rr, rc = adl_trainer(cfg, steps)
        bare.append(bw)
        bare_cpu.append(bc)
        train.append(tr)
        run.append(rr)
        run_cpu.append(rc)
        print(
            f"rep {i}: bare {bw:.1f} ({bc:.1f}/cpu-s)  adl train {tr:.1f}  adl run {rr:.1f} ({rc:.1f}/cpu-s) "
            "generator steps/s",
            flush=True,
        )
    med = statistics.median
    r_train = med(t / x for t, x in zip(train, bare))
    r_run = med(r / x for r, x in zip(run, bare))
    r_cpu = med(r / x for r, x in zip(run_cpu, bare_cpu))
    b, nc = cfg.train.batch_size, cfg.n_critic
    print(f"WGAN-GP ring8, batch {b}, n_critic {nc}, 1 thread, {steps} steps × {reps}")
    print(f"  bare torch loop      median {med(bare):.1f} generator steps/s, {med(bare_cpu):.1f} per CPU s")
    print(f"  adl trainer (train)  median {med(train):.1f}  ratio median {r_train:.3f}")
    print(f"  adl trainer (run)    median {med(run):.1f}  ratio median {r_run:.3f}")
    print(f"  per CPU second (run) median {med(run_cpu):.1f}  ratio median {r_cpu:.3f}")


def part_tune(steps: int, reps: int) -> None:
    from mlflow.tracking import MlflowClient

    from pipelines.cli.main import main

    data = yaml.safe_load(CONFIG.read_text())
    data.update({"report_every": max(steps // 10, 1)})
    data["train"].update({"threads": 1, "device": "cpu"})
    data["train"]["steps"] = steps
    direct, trial, command = [], [], []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for i in range(reps):
            cfg = build(GanConfig, data)
            t0 = time.perf_counter()
            t = GanTrainer(cfg)
            while t.position < t.total:
                t.run_chunk()
            t.write_artifacts(root / f"direct{i}", final=True)
            direct.append(time.perf_counter() - t0)

            sweep = {
                "family": "gan",
                "base_config": str(CONFIG),
                "name": f"bench{i}",
                "overrides": {
                    "train.steps": steps,
                    "report_every": data["report_every"],
                    "train.threads": 1,
                    "train.device": "cpu",
                },
                "search_space": {"seed": {"grid": [0]}},
                "scheduler": {"kind": "fifo"},
                "max_concurrent": 1,
                "resources": {"cpu": 1},
                "storage_path": str(root / "tune"),
            }
            path = root / f"bench{i}.yaml"
            path.write_text(yaml.safe_dump(sweep))
            uri = f"sqlite:///{root / 'mlflow.db'}"
            t0 = time.perf_counter()
            assert (
                main(
                    [
                        "sweep",
                        "--config",
                        str(path),
                        "--tracking-uri",
                        uri,
                        "--experiment",
                        "bench",
                        "--num-cpus",
                        "2",
                    ]
                )
                == 0
            )
            command.append(time.perf_counter() - t0)
            client = MlflowClient(uri)
            runs = client.search_runs(
                [client.get_experiment_by_name("bench").experiment_id],
                filter_string=f"tags.`adl.sweep` = 'bench{i}'",
            )
            child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
            trial.append(child.data.metrics["perf/wall_s"])  # the trial's own clock
            print(
                f"rep {i}: direct {direct[-1]:.1f}s  tune trial {trial[-1]:.1f}s  adl sweep command "
                f"{command[-1]:.1f}s",
                flush=True,
            )
            import ray

            ray.shutdown()
    d_med = statistics.median(direct)
    print(f"WGAN-GP ring8, {steps} steps, report every {data['report_every']}")
    print(f"  direct trainer        median {d_med:.1f}s")
    print(
        f"  as a Tune trial       median {statistics.median(trial):.1f}s  overhead "
        f"{statistics.median(trial) / d_med - 1:+.1%}"
    )
    print(
        f"  whole `adl sweep`     median {statistics.median(command):.1f}s  overhead "
        f"{statistics.median(command) / d_med - 1:+.1%} (Ray start, parent run, summary)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["loop", "tune", "all"], default="all")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=500, help="generator steps per repetition of part 1")
    ap.add_argument(
        "--trial-steps", type=int, default=2000, help="generator steps of the ~60 s trial (part 2)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)  # both sides on one thread: the comparison is per core
    if args.part in ("loop", "all"):
        part_loop(args.reps, args.steps)
    if args.part in ("tune", "all"):
        part_tune(args.trial_steps, max(1, args.reps // 2))
