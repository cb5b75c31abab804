"""GAN and sequence trainers on one device against bare torch loops of the same models, side by side.

For each case the adl trainer and a hand-written loop (same networks, batch, loss, optimiser and
precision; the loop uses torch's defaults: foreach Adam, NCHW tensors) alternate in one process
(A B A B …), each repetition timed for about ``--seconds`` with the device synchronised before the
clock starts and stops. The ratio adl / bare of each repetition is reported, and its median.

- GAN, generator steps/s: ring8 WGAN-GP (3×128 MLPs, batch 256, n_critic 5, λ 10) and DCGAN 32×32
  RGB (non-saturating, batch norm, base 64, 3 stages, z 100, as configs/gan/images_dcgan.yaml) at
  batch 64 and 256, each in fp32 and bf16 (autocast). ``adl_train`` is the trainer's own
  ``gen_steps_per_s`` (training only); ``adl_run`` also pays for one evaluation per repetition.
- Sequence models, tokens/s: a character LM on the standard library's text, batch 64 × BPTT 128,
  hidden 256, 2 layers, embedding 64, dropout 0.1, AdamW 3e-3, clip 1.0; the trainer's fused
  ``nn.LSTM`` / ``nn.GRU`` against a bare loop of the same modules (fp32 and bf16: in bf16 both run the
  recurrent kernel in fp32 and the output layer in bf16), with the explicit cells' rate (fp32) beside
  them.

TF32 and cuDNN's autotuner are process-wide: the first trainer turns them on, so both sides of every
comparison run with them (recorded in the output).

Out of scope here: four trials sharing one GPU at ``resources.gpu: 0.25`` are measured by
``bench_gpu_packing.py`` (Ray actors with fractional GPUs running these same trainers).

    .venv/bin/python benchmarks/bench_gpu_trials.py                   # on the GPU machine, ~5 minutes
    .venv/bin/python benchmarks/bench_gpu_trials.py --device cpu --quick   # a smoke run in seconds

Writes benchmarks/results/gpu_trials.json (``--out``), rewritten after every case (``"complete": false``
until the end); ``--quick`` writes gpu_trials.quick.json.tmp, git-ignored: its tiny models measure
nothing worth keeping.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.partial_json import save  # noqa: E402
from components.config import build, load  # noqa: E402
from components.device import resolve_device, synchronize  # noqa: E402
from components.gan.config import GanConfig  # noqa: E402
from components.gan.data import DataSource, make_source  # noqa: E402
from components.gan.nets import build_networks  # noqa: E402
from components.gan.trainer import GanTrainer  # noqa: E402
from components.seq.config import SeqConfig  # noqa: E402
from components.seq.text import Vocabulary, stdlib_corpus  # noqa: E402
from components.seq.trainer import SeqTrainer  # noqa: E402

Runner = Callable[[int], int]  # run(n steps) -> work units done (generator steps or tokens)


@dataclass(frozen=True)
class Sizes:
    """Model and batch sizes; ``--quick`` shrinks them so a CPU runs the whole script in seconds."""

    ring8_batch: int = 256
    ring8_hidden: int = 128
    dcgan_batches: tuple[int, ...] = (64, 256)
    dcgan_base: int = 64
    dcgan_z: int = 100
    dcgan_images: int = 4096
    seq_batch: int = 64
    seq_bptt: int = 128
    seq_hidden: int = 256
    seq_embed: int = 64
    seq_chars: int = 0  # 0 = the whole corpus
    eval_samples: int = 1000  # GAN samples scored once per repetition (adl_run)


QUICK = Sizes(
    ring8_batch=32,
    ring8_hidden=16,
    dcgan_batches=(8,),
    dcgan_base=8,
    dcgan_z=16,
    dcgan_images=64,
    seq_batch=4,
    seq_bptt=16,
    seq_hidden=16,
    seq_embed=8,
    seq_chars=20_000,
    eval_samples=64,
)


def timed(run: Runner, n: int, device: torch.device) -> float:
    """Units per second of ``run(n)``, the device drained before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    units = run(n)
    synchronize(device)
    return units / (time.perf_counter() - t0)


def compare(sides: dict[str, Runner], device: torch.device, seconds: float, reps: int) -> dict[str, Any]:
    """Warm every side up, size its repetitions to ~``seconds``, then alternate them ``reps`` times."""
    n_steps: dict[str, int] = {}
    for name, run in sides.items():
        run(2)  # allocator, cuDNN autotuning, optimiser state
        rate = timed(run, 3, device) / max(run(0) or 1, 1)  # steps per second (run(0) = units per step)
        n_steps[name] = max(3, int(rate * seconds))
    rates: dict[str, list[float]] = {k: [] for k in sides}
    order = list(sides)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            rates[name].append(timed(sides[name], n_steps[name], device))
    bare = rates[order[0]]
    out: dict[str, Any] = {"steps_per_rep": n_steps}
    for name, values in rates.items():
        out[name] = {"median": statistics.median(values), "reps": values}
        if name != order[0]:
            out[name]["ratio_to_bare_median"] = statistics.median(v / b for v, b in zip(values, bare))
    return out


# -- GAN ----------------------------------------------------------------------------------------------


def gan_config(case: str, batch: int, precision: str, device: str, sizes: Sizes) -> dict[str, Any]:
    train = {"steps": 10**9, "batch_size": batch, "precision": precision, "device": device, "threads": 1}
    if case == "ring8":
        return {
            "data": {"kind": "ring8"},
            "model": {"arch": "mlp", "z_dim": 2, "hidden": sizes.ring8_hidden, "layers": 3},
            "train": {**train, "loss": "wgan_gp", "n_critic": 5, "lr": 1e-3, "betas": [0.0, 0.9]},
            "eval": {"samples": sizes.eval_samples},
            "report_every": 10**9,
        }
    return {
        "model": {"arch": "dcgan", "z_dim": sizes.dcgan_z, "hidden": sizes.dcgan_base, "conv_stages": 3},
        "train": {**train, "loss": "nonsaturating", "lr": 2e-4, "betas": [0.5, 0.999]},
        "eval": {"samples": sizes.eval_samples},
        "report_every": 10**9,
    }


def image_source(sizes: Sizes) -> DataSource:
    """Stand-in 32×32 RGB images in [−1, 1] (only their shape and count matter for speed)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(sizes.dcgan_images, 3, 32, 32, generator=g, device="cpu") * 2 - 1
    return DataSource("synthetic32", (3, 32, 32), data=x)


def adl_gan(cfg: GanConfig, source: DataSource | None, train_rates: list[float]) -> Runner:
    trainer = GanTrainer(cfg, source)

    def run(n: int) -> int:
        if n == 0:
            return 1
        trainer.total = trainer.position + n  # one run_chunk: n steps and one evaluation
        train_rates.append(trainer.run_chunk()["gen_steps_per_s"])
        return n

    return run


def bare_gan(cfg: GanConfig, source: DataSource, device: torch.device) -> Runner:
    """The same nets, batch, loss and optimiser as a loop written by hand."""
    m, t = cfg.model, cfg.train
    torch.manual_seed(cfg.seed)
    G, D = build_networks(
        m.arch, source.sample_shape, m.z_dim, m.hidden, m.layers, m.conv_stages, "auto", "auto", t.loss
    )
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    b, z_dim, n_critic, lam = t.batch_size, m.z_dim, cfg.n_critic, t.gp_weight
    modes = None if source.modes is None else source.modes.to(device)
    data = None if source.data is None else source.data.to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16")

    def real_batch() -> torch.Tensor:
        if modes is not None:
            idx = torch.randint(len(modes), (b,), device=device)
            return modes[idx] + source.sigma * torch.randn(b, modes.shape[1], device=device)
        assert data is not None
        return data[torch.randint(len(data), (b,), device=device)]

    def run(n: int) -> int:
        if n == 0:
            return 1
        for _ in range(n):
            for _ in range(n_critic):
                real = real_batch()
                with amp:
                    with torch.no_grad():
                        fake = G(torch.randn(b, z_dim, device=device)).float()
                    d_real, d_fake = D(real).float(), D(fake).float()
                    if t.loss == "wgan_gp":
                        a = torch.rand(b, *([1] * (real.dim() - 1)), device=device)
                        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
                        (grad,) = torch.autograd.grad(D(x_hat).float().sum(), x_hat, create_graph=True)
                        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
                        loss_d = d_fake.mean() - d_real.mean() + lam * gp
                    else:
                        loss_d = F.binary_cross_entropy_with_logits(
                            d_real, torch.ones_like(d_real)
                        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            with amp:
                score = D(G(torch.randn(b, z_dim, device=device))).float()
                if t.loss == "wgan_gp":
                    loss_g = -score.mean()
                else:
                    loss_g = F.binary_cross_entropy_with_logits(score, torch.ones_like(score))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        return n

    return run


def gan_cases(
    device: str, sizes: Sizes, seconds: float, reps: int, out: dict[str, Any], done: Callable[[], None]
) -> None:
    """Every GAN case into ``out``, calling ``done`` after each (the caller saves the JSON so far)."""
    cases = [("ring8", sizes.ring8_batch)] + [("dcgan32", b) for b in sizes.dcgan_batches]
    for case, batch in cases:
        for precision in ("fp32", "bf16"):
            name = f"{case}_b{batch}_{precision}"
            cfg = build(GanConfig, gan_config(case, batch, precision, device, sizes))
            source = None if case == "ring8" else image_source(sizes)
            train_rates: list[float] = []
            adl = adl_gan(cfg, source, train_rates)
            dev = resolve_device(device)
            bare = bare_gan(cfg, source or make_source(cfg.data), dev)
            row = compare({"bare": bare, "adl_run": adl}, dev, seconds, reps)
            timed_train = train_rates[-reps:]  # the trainer's own training-only rate, same repetitions
            row["adl_train"] = {
                "median": statistics.median(timed_train),
                "reps": timed_train,
                "ratio_to_bare_median": statistics.median(
                    a / b for a, b in zip(timed_train, row["bare"]["reps"])
                ),
            }
            out[name] = row
            print(
                f"GAN {name:<22} bare {row['bare']['median']:8.1f} generator steps/s   adl train "
                f"{row['adl_train']['median']:8.1f} ({row['adl_train']['ratio_to_bare_median']:.3f}x)   "
                f"adl run {row['adl_run']['median']:8.1f} ({row['adl_run']['ratio_to_bare_median']:.3f}x)",
                flush=True,
            )
            done()


# -- sequence models -----------------------------------------------------------------------------------


class BareLM(nn.Module):
    def __init__(self, vocab: int, cell: str, sizes: Sizes) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, sizes.seq_embed)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(sizes.seq_embed, sizes.seq_hidden, 2, batch_first=True, dropout=0.1)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(sizes.seq_hidden, vocab)

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        h = self.drop(self.embed(x))
        # The recurrence in fp32 outside autocast, as adl's trainer runs it: autocast would put cuDNN's
        # LSTM/GRU in fp16, whatever its dtype.
        with torch.autocast(x.device.type, enabled=False):
            out, state = self.rnn(h.float(), state)
        return self.head(self.drop(out)), state


def corpus(sizes: Sizes) -> str:
    text = stdlib_corpus()
    return text[: sizes.seq_chars] if sizes.seq_chars else text


def bare_seq(cell: str, precision: str, device: torch.device, sizes: Sizes) -> Runner:
    text = corpus(sizes)
    vocab = Vocabulary.from_text(text)
    ids = torch.from_numpy(vocab.encode(text))
    b, bptt = sizes.seq_batch, sizes.seq_bptt
    n = len(ids) // b
    data = ids[: n * b].view(b, n).to(device)
    torch.manual_seed(0)
    model = BareLM(len(vocab), cell, sizes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    pos, state = 0, None

    def run(steps: int) -> int:
        nonlocal pos, state
        if steps == 0:
            return b * bptt
        for _ in range(steps):
            if pos + bptt + 1 > n:
                pos, state = 0, None
            x, y = data[:, pos : pos + bptt], data[:, pos + 1 : pos + bptt + 1]
            pos += bptt
            if state is not None:
                state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            with amp:
                logits, state = model(x, state)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return steps * b * bptt

    return run


def adl_seq(cell: str, impl: str, precision: str, device: str, sizes: Sizes) -> Runner:
    overrides = [
        f"model.cell={cell}",
        f"model.impl={impl}",
        f"model.hidden_size={sizes.seq_hidden}",
        "model.num_layers=2",
        f"model.embed_dim={sizes.seq_embed}",
        "model.dropout=0.1",
        f"data.max_chars={sizes.seq_chars}",
        f"train.batch_size={sizes.seq_batch}",
        f"train.bptt={sizes.seq_bptt}",
        "train.lr=0.003",
        "train.clip_grad_norm=1.0",
        f"train.precision={precision}",
        f"train.device={device}",
        "train.threads=1",
    ]
    trainer = SeqTrainer(load(SeqConfig, None, overrides))

    def run(steps: int) -> int:
        if steps == 0:
            return sizes.seq_batch * sizes.seq_bptt
        before = trainer.tokens
        trainer.train_steps(steps)
        return trainer.tokens - before

    return run


def seq_cases(
    device: str, sizes: Sizes, seconds: float, reps: int, out: dict[str, Any], done: Callable[[], None]
) -> None:
    """Every sequence case into ``out``, calling ``done`` after each."""
    dev = resolve_device(device)
    for cell in ("lstm", "gru"):
        for precision in ("fp32", "bf16"):
            sides = {
                "bare": bare_seq(cell, precision, dev, sizes),
                "adl_fused": adl_seq(cell, "fused", precision, device, sizes),
            }
            if precision == "fp32":
                sides["adl_explicit"] = adl_seq(cell, "explicit", precision, device, sizes)
            row = compare(sides, dev, seconds, reps)
            name = f"{cell}_{precision}"
            out[name] = row
            fused = row["adl_fused"]
            line = (
                f"seq {name:<10} bare {row['bare']['median']:10,.0f} tokens/s   adl fused "
                f"{fused['median']:10,.0f} ({fused['ratio_to_bare_median']:.3f}x)"
            )
            if "adl_explicit" in row:
                e = row["adl_explicit"]
                line += f"   adl explicit {e['median']:10,.0f} ({e['ratio_to_bare_median']:.3f}x)"
            print(line, flush=True)
            done()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="auto, cpu, cuda or cuda:N (default cuda)")
    ap.add_argument("--quick", action="store_true", help="tiny models, short repetitions: a smoke run")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of one timed repetition")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions per side")
    ap.add_argument("--parts", nargs="+", choices=["gan", "seq"], default=["gan", "seq"])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    sizes = QUICK if args.quick else Sizes()
    seconds, reps = (0.2, 2) if args.quick else (args.seconds, args.reps)
    device = resolve_device(args.device, "--device")
    out_path = (
        Path(args.out)
        if args.out
        else REPO / "benchmarks/results" / ("gpu_trials.quick.json.tmp" if args.quick else "gpu_trials.json")
    )
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "seconds_per_rep": seconds,
        "reps": reps,
        "sizes": dataclasses.asdict(sizes),
    }

    def done(complete: bool = False) -> None:
        results["settings"] = {
            "threads": torch.get_num_threads(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        }
        results["wall_s"] = time.perf_counter() - t0
        save(out_path, results, complete)

    done()
    if "gan" in args.parts:
        results["gan_generator_steps_per_s"] = {}
        gan_cases(str(device), sizes, seconds, reps, results["gan_generator_steps_per_s"], done)
    if "seq" in args.parts:
        results["seq_tokens_per_s"] = {}
        seq_cases(str(device), sizes, seconds, reps, results["seq_tokens_per_s"], done)
    done(complete=True)
    print(f"{results['wall_s']:.0f} s; wrote {out_path}")


if __name__ == "__main__":
    main()
