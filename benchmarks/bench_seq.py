"""Training tokens/s of adl's seq trainer against a bare ``nn.LSTM`` / ``nn.GRU`` loop of the same model.

Setting of the issue: batch 64, sequence (BPTT window) 128, hidden 256, 2 layers, on the standard
library corpus (~100-character vocabulary, embedding 64, dropout 0.1, AdamW, gradient clipping 1.0).
The bare loop is what one would write by hand: embedding → nn.LSTM/nn.GRU → linear, cross-entropy,
carried and detached state, the same optimizer and clipping. adl's fused path (``SeqTrainer.train_steps``)
and its explicit cells run in the same process, interleaved repetition by repetition, so the ratio
stays fair when other work shares the machine. Reported: median and best tokens/s of each, the median
of the per-repetition ratios and the ratio of the best repetitions.

    .venv/bin/python benchmarks/bench_seq.py [--reps 5] [--steps 4] [--cells lstm gru] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import load  # noqa: E402
from components.seq.config import SeqConfig  # noqa: E402
from components.seq.text import Vocabulary, stdlib_corpus  # noqa: E402
from components.seq.trainer import SeqTrainer  # noqa: E402

BATCH, BPTT, HIDDEN, LAYERS, EMBED, DROPOUT, LR, CLIP = 64, 128, 256, 2, 64, 0.1, 3e-3, 1.0


class BareLM(nn.Module):
    def __init__(self, vocab: int, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(EMBED, HIDDEN, LAYERS, batch_first=True, dropout=DROPOUT)
        self.drop = nn.Dropout(DROPOUT)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, x, state=None):  # type: ignore[no-untyped-def]
        out, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state


def bare_loop(cell: str) -> Callable[[int], int]:
    """A hand-written truncated-BPTT loop; returns run(n_steps) -> tokens trained."""
    text = stdlib_corpus()
    vocab = Vocabulary.from_text(text)
    ids = torch.from_numpy(vocab.encode(text))
    n = len(ids) // BATCH
    data = ids[: n * BATCH].view(BATCH, n)
    model = BareLM(len(vocab), cell)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    pos, state = 0, None

    def run(steps: int) -> int:
        nonlocal pos, state
        for _ in range(steps):
            if pos + BPTT + 1 > n:
                pos, state = 0, None
            x, y = data[:, pos : pos + BPTT], data[:, pos + 1 : pos + BPTT + 1]
            pos += BPTT
            if state is not None:
                state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            logits, state = model(x, state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
        return steps * BATCH * BPTT

    return run


def adl_loop(cell: str, impl: str) -> Callable[[int], int]:
    overrides = [
        f"model.cell={cell}",
        f"model.impl={impl}",
        f"model.hidden_size={HIDDEN}",
        f"model.num_layers={LAYERS}",
        f"model.embed_dim={EMBED}",
        f"model.dropout={DROPOUT}",
        f"train.batch_size={BATCH}",
        f"train.bptt={BPTT}",
        f"train.lr={LR}",
        f"train.clip_grad_norm={CLIP}",
        "train.device=cpu",  # the bare loop runs on the CPU
        f"train.threads={torch.get_num_threads()}",  # what --threads (or torch's default) set
    ]
    trainer = SeqTrainer(load(SeqConfig, None, overrides))

    def run(steps: int) -> int:
        before = trainer.tokens
        trainer.train_steps(steps)
        return trainer.tokens - before

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    p.add_argument("--steps", type=int, default=4, help="training steps per variant per repetition")
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    p.add_argument("--no-explicit", action="store_true", help="skip the explicit cells")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}, bptt {BPTT}, "
        f"hidden {HIDDEN}, {LAYERS} layers; {args.reps} reps x {args.steps} steps, interleaved"
    )
    for cell in args.cells:
        torch.manual_seed(0)
        variants = {"bare nn": bare_loop(cell), "adl fused": adl_loop(cell, "fused")}
        if not args.no_explicit:
            variants["adl explicit"] = adl_loop(cell, "explicit")
        for run in variants.values():
            run(1)  # warm-up: allocator, optimizer state
        speed: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.reps):
            order = list(variants.items())
            for name, run in order if rep % 2 == 0 else order[::-1]:  # ABBA: cancels drift in load
                t0 = time.perf_counter()
                tokens = run(args.steps)
                speed[name].append(tokens / (time.perf_counter() - t0))
        base = speed["bare nn"]
        print(f"\n{cell.upper()}  (best = fastest repetition, the least disturbed by other load)")
        for name, values in speed.items():
            ratios = [v / b for v, b in zip(values, base)]
            print(
                f"  {name:<13} median {statistics.median(values):>7,.0f} tokens/s, "
                f"best {max(values):>7,.0f}   "
                f"ratio to bare: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
                f"max {max(ratios):.3f}), best/best {max(values) / max(base):.3f}"
            )


if __name__ == "__main__":
    main()
