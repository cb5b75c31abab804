"""The two tasks the sequence trainer runs: a character LM and a last-step regression.

A task owns its model, its data and its held-out evaluation; the trainer owns the optimizer, the
clock and the reports. Both tasks expose the same small surface: ``model``, ``train_loss()`` (the
loss of the next batch and how many tokens it covered), ``evaluate()`` (held-out metrics with
``val_loss``), ``train_metrics()`` (the training loss in ``val_loss``'s unit, ``loss_unit``: bits per
character for the LM, MSE for regression), ``default_target``, ``state_dict()`` / ``load_state_dict()``
and ``artifacts()``.

A task lives on one device: its model is initialised on the CPU (the same weights on every device)
and moved; its token lanes and held-out batches are copied there once; fresh batches are drawn there.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from components.config import ConfigError
from components.data_card import DataCard, array_digest, recipe_digest
from components.seq.config import SeqConfig
from components.seq.losses import lm_loss, lm_loss_sum, mse, nats_to_bits, perplexity_from_bits
from components.seq.markov import MarkovSource
from components.seq.models import CharLM, LastStepRegressor
from components.seq.recurrent import State, detach_state
from components.seq.streams import StreamBatcher, eval_windows
from components.seq.synthetic import ADDING_TRIVIAL_MSE, adding_batch, linear_sum_batch, linear_sum_weights
from components.seq.text import Vocabulary, read_text_file, sha256, split_ids, stdlib_corpus


class CharLMTask:
    """Next-character prediction with truncated BPTT; held-out bpc, perplexity and accuracy."""

    def __init__(self, cfg: SeqConfig, device: torch.device | None = None) -> None:
        self.cfg = cfg
        self.device = device or torch.device("cpu")
        d, t = cfg.data, cfg.train
        self.markov: MarkovSource | None = None
        if d.source == "markov":
            self.markov = MarkovSource.random(
                d.markov_alphabet, d.markov_order, d.markov_concentration, d.data_seed
            )
            ids = self.markov.sample(d.markov_length, d.data_seed + 1)
            self.vocab = Vocabulary(self.markov.alphabet)
            self.corpus_name = f"markov-K{d.markov_alphabet}-order{d.markov_order}"
            self.corpus_source = (
                f"generated: Markov chain (K={d.markov_alphabet}, order {d.markov_order}, "
                f"α={d.markov_concentration:g}, seed {d.data_seed})"
            )
            self.corpus_info = (
                f"markov source: K={d.markov_alphabet}, order={d.markov_order}, "
                f"alpha={d.markov_concentration}, seed={d.data_seed}, "
                f"entropy rate {self.markov.entropy_rate():.4f} bits/char"
            )
        else:
            min_chars = max(math.ceil(2 * t.batch_size / (1 - d.val_fraction)), math.ceil(4 / d.val_fraction))
            if d.source == "file":
                assert d.path is not None  # SeqConfig.validate
                text, name = read_text_file(d.path, min_chars), d.path
                self.corpus_name = Path(d.path).name
                self.corpus_source = str(Path(d.path).expanduser().resolve())
            else:
                text, name = stdlib_corpus(), "pydoc_data.topics (Python standard library help topics)"
                self.corpus_name, self.corpus_source = "pydoc_data.topics", "pydoc_data.topics"
            if d.max_chars:
                text = text[: d.max_chars]
            self.vocab = Vocabulary.from_text(text)
            ids = self.vocab.encode(text)
            self.corpus_info = (
                f"{name}: {len(text)} characters, {len(self.vocab)} distinct, sha256 {sha256(text)}"
            )
        self.train_ids, self.val_ids = split_ids(ids, d.val_fraction)
        if len(self.train_ids) < 2 * t.batch_size or len(self.val_ids) < 4:
            raise ConfigError(
                f"the text has {len(ids)} characters: too short for data.val_fraction="
                f"{d.val_fraction} and train.batch_size={t.batch_size}"
            )
        if t.eval_chars:
            self.val_ids = self.val_ids[: t.eval_chars]
        self.eval_lanes = max(1, min(t.batch_size, len(self.val_ids) // (2 * t.bptt)))
        m = cfg.model
        with torch.device("cpu"):
            self.model = CharLM(
                len(self.vocab),
                m.embed_dim,
                m.hidden_size,
                m.num_layers,
                m.dropout,
                m.cell,
                m.impl,
                m.gru_reset_after,
            )
        self.model.to(self.device)
        self.batcher = StreamBatcher(self.train_ids, t.batch_size, t.bptt, self.device)
        self.val_windows = eval_windows(self.val_ids, self.eval_lanes, t.bptt, self.device)
        self.state: State | None = None
        self.default_target = self.markov.entropy_rate() + 0.05 if self.markov else 2.5
        # The true model's loss on the held-out slice: the floor the model is compared with.
        self.source_bpc = self.markov.log_loss_bits(self.val_ids) if self.markov else None

    def data_cards(self) -> list[DataCard]:
        """The text's training and held-out parts (character ids), hashed by content."""
        name, source, local = self.corpus_name, self.corpus_source, self.cfg.data.source == "file"
        return [
            DataCard(name, source, array_digest(ids), (), "int64", len(ids), local, context)
            for ids, context in ((self.train_ids, "training"), (self.val_ids, "validation"))
        ]

    def export(self) -> tuple[nn.Module, np.ndarray]:
        """The model as it is served (token ids [B, T] → logits [B, T, V], from a zero state) and two
        held-out windows as its input example. The export fixes T to the training window
        (``train.bptt``): the fused kernels specialise the length when traced."""
        n = min(self.cfg.train.bptt, len(self.val_ids) // 2)
        ids = np.asarray(self.val_ids[: 2 * n], dtype=np.int64).reshape(2, n)
        return NextCharLogits(self.model), ids

    def train_loss(self) -> tuple[Tensor, int]:
        batch = self.batcher.next()
        state = None if batch.fresh else detach_state(self.state)
        logits, self.state = self.model(batch.inputs, state)
        return lm_loss(logits, batch.targets), batch.targets.numel()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """bpc over the held-out slice, read as ``eval_lanes`` continuous streams with carried state."""
        was_training = self.model.training
        self.model.eval()
        # Sums stay on the device (float64, as exact as the host's floats) until the end: one sync.
        nats = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count, state = 0, None
        for batch in self.val_windows:
            logits, state = self.model(batch.inputs, state)
            nats += lm_loss_sum(logits, batch.targets).double()
            correct += (logits.argmax(dim=-1) == batch.targets).sum()
            count += batch.targets.numel()
        self.model.train(was_training)
        bpc = nats_to_bits(float(nats) / count)
        out = {
            "val_loss": bpc,
            "val_bpc": bpc,
            "val_perplexity": perplexity_from_bits(bpc),
            "val_accuracy": int(correct) / count,
        }
        if self.source_bpc is not None:
            out["source_bpc"] = self.source_bpc
        return out

    loss_unit = "bits per character"

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        """The training loss in the held-out loss's unit: ``mean_loss`` (nats, as the optimizer sees
        it) in bits per character, so ``train_loss`` and ``val_loss`` compare directly."""
        bits = nats_to_bits(mean_loss)
        return {"train_loss": bits, "train_bpc": bits}

    def samples(self, seed: int, temperatures: list[float], length: int) -> str:
        """One generated text per temperature, each after the configured prime."""
        prime = "".join(c for c in self.cfg.sample.prime if c in self.vocab.chars)
        prime = prime or self.vocab.decode(self.train_ids[:1])
        g = torch.Generator(device=self.device).manual_seed(seed)
        prime_ids = torch.from_numpy(self.vocab.encode(prime)).to(self.device)
        parts = []
        for temp in temperatures:
            ids = self.model.sample(prime_ids, length, temp, g)  # type: ignore[operator]
            parts.append(f"--- temperature {temp} ---\n{prime}{self.vocab.decode(ids.cpu().numpy())}\n")
        return "\n".join(parts)

    def artifacts(self, out_dir: Path, position: int, final: bool) -> list[Path]:
        paths = []
        s = self.cfg.sample
        if s.length > 0 and s.temperatures:
            # Intermediate reports (every Tune report) get one short sample: sampling is sequential
            # and would otherwise cost a noticeable share of a short trial.
            temps = s.temperatures if final else [s.temperatures[len(s.temperatures) // 2]]
            length = s.length if final else min(s.length, 200)
            p = out_dir / f"samples_step{position:07d}.txt"
            p.write_text(self.samples(self.cfg.seed * 1_000_003 + position, temps, length), encoding="utf-8")
            paths.append(p)
        if final:
            p = out_dir / "corpus.txt"
            p.write_text(self.corpus_info + "\n", encoding="utf-8")
            paths.append(p)
        return paths

    def state_dict(self) -> dict[str, Any]:
        state = self.state
        hidden = [] if state is None else list(state) if isinstance(state, tuple) else [state]
        return {"offset": self.batcher.offset, "hidden": [h.detach().clone() for h in hidden]}

    def load_state_dict(self, state: dict[str, Any], position: int = 0) -> None:
        self.batcher.offset = int(state["offset"])
        hidden = [h.to(self.device) for h in state["hidden"]]
        self.state = None if not hidden else tuple(hidden) if len(hidden) == 2 else hidden[0]  # type: ignore[assignment]


class RegressionTask:
    """The adding problem or the linear-sum task, on the last-step model; held-out MSE."""

    def __init__(self, cfg: SeqConfig, device: torch.device | None = None) -> None:
        self.cfg = cfg
        self.device = device or torch.device("cpu")
        d, m = cfg.data, cfg.model
        input_dim = 2 if cfg.task == "adding" else d.input_dim
        self.w = linear_sum_weights(d.input_dim, d.data_seed).to(self.device)
        with torch.device("cpu"):
            self.model = LastStepRegressor(
                input_dim, m.hidden_size, 1, m.cell, m.impl, m.num_layers, m.gru_reset_after
            )
        self.model.to(self.device)
        # Training batches are drawn on the device; the held-out set on the CPU, then moved once, so it
        # is the same set on every device.
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        held_out = torch.Generator(device="cpu").manual_seed(d.data_seed + 10_007)
        self.val = [
            type(b)(b.x.to(self.device), b.y.to(self.device))
            for b in (self._batch(held_out) for _ in range(cfg.train.eval_batches))
        ]
        if cfg.task == "adding":
            self.trivial_mse, self.default_target = ADDING_TRIVIAL_MSE, 0.01
        else:
            self.trivial_mse, self.default_target = 1 + d.noise_std**2, d.noise_std**2 + 0.01

    def _batch(self, g: torch.Generator) -> Any:
        d, b = self.cfg.data, self.cfg.train.batch_size
        if self.cfg.task == "adding":
            return adding_batch(b, d.length, g)
        return linear_sum_batch(b, d.length, self.w, d.noise_std, g)

    def data_cards(self) -> list[DataCard]:
        """Training sequences are drawn fresh every batch (hashed by their recipe); the held-out set is
        fixed (hashed by content)."""
        d, task = self.cfg.data, self.cfg.task
        recipe: dict[str, Any] = {"task": task, "length": d.length, "data_seed": d.data_seed}
        if task != "adding":
            recipe.update(input_dim=d.input_dim, noise_std=d.noise_std)
        text = ", ".join(f"{k}={v}" for k, v in recipe.items() if k != "task")
        shape = tuple(self.val[0].x.shape[1:])
        x = torch.cat([b.x for b in self.val]).cpu().numpy()
        held_out = DataCard(task, f"held out: {task} ({text})", array_digest(x), shape, "float32", len(x))
        return [
            DataCard(task, f"generated: {task} ({text})", recipe_digest(recipe), shape, "float32"),
            dataclasses.replace(held_out, context="validation"),
        ]

    def export(self) -> tuple[nn.Module, np.ndarray]:
        """The model (x [B, T, D] → [B, 1]) and two held-out sequences as its input example."""
        return self.model, self.val[0].x[:2].detach().cpu().numpy()

    def train_loss(self) -> tuple[Tensor, int]:
        batch = self._batch(self.generator)
        return mse(self.model(batch.x), batch.y), batch.x.shape[0] * batch.x.shape[1]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        val = float(np.mean([float(mse(self.model(b.x), b.y)) for b in self.val]))  # ≤ 8 batches
        self.model.train(was_training)
        return {"val_loss": val, "val_mse": val, "trivial_mse": self.trivial_mse}

    loss_unit = "MSE"

    def train_metrics(self, mean_loss: float) -> dict[str, float]:
        return {"train_loss": mean_loss}

    def artifacts(self, out_dir: Path, position: int, final: bool) -> list[Path]:
        if not final:
            return []
        from components.seq.plots import plot_predictions  # matplotlib: ~0.5 s, only pictures need it

        with torch.no_grad():
            self.model.eval()
            pred = torch.cat([self.model(b.x) for b in self.val]).squeeze(1).float().cpu().numpy()
            self.model.train()
        target = torch.cat([b.y for b in self.val]).squeeze(1).cpu().numpy()
        return [plot_predictions(pred, target, out_dir / "predictions.png", self.cfg.task)]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "generator_device": self.device.type}

    def load_state_dict(self, state: dict[str, Any], position: int = 0) -> None:
        """Restore the batch stream; from another kind of device (CPU and CUDA generators are different
        algorithms) the stream is re-seeded from (seed, ``position``) instead: fresh but reproducible."""
        if state.get("generator_device", "cpu") == self.device.type:
            self.generator.set_state(state["generator"])
        else:
            self.generator.manual_seed(self.cfg.seed * 1_000_003 + position + 1)


def make_task(cfg: SeqConfig, device: torch.device | None = None) -> CharLMTask | RegressionTask:
    return CharLMTask(cfg, device) if cfg.task == "char_lm" else RegressionTask(cfg, device)


class NextCharLogits(nn.Module):
    """A :class:`CharLM` that returns only the logits: one tensor out, as a served model does."""

    def __init__(self, model: CharLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(tokens)[0]
