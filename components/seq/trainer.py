"""The sequence-model trainer: adl's trainer protocol around one task, one model, one optimizer.

``adl train seq`` drives it through ``pipelines/runner.py``; sweeps drive the same object inside Tune
trials. One ``run_chunk()`` is ``train.report_every`` optimizer steps followed by a held-out
evaluation. The clock counts training and evaluation (what a user waits for) but not the
construction of the corpus; ``tokens_per_s`` counts training time only (on CUDA the clock waits for
the queued work before it stops).

Devices: the model, optimizer state, token lanes, batches and the running loss live on
``train.device``; checkpoints hold CPU tensors and restore on either device. ``train.precision:
bf16`` runs the forward pass under autocast (the loss is computed in fp32) except the fused recurrent
kernel, which stays fp32 (``recurrent.py`` says why); on CUDA AdamW is fused
and TF32 is on unless ``train.tf32`` is false. Dropout draws from torch's global RNG of the device,
seeded from ``seed``; both the CPU state and, on CUDA, the device's state are checkpointed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import ConfigError
from components.data_card import DataCard
from components.device import (
    Placement,
    make_optimizer,
    resolve_placement,
    restore_optimizer,
    synchronize,
    to_cpu,
)
from components.seq.config import SeqConfig
from components.seq.recurrent import count_params
from components.seq.tasks import make_task


class SeqTrainer:
    """Trains a char LM or a last-step regressor; reports ``val_loss`` (bpc or MSE) every chunk.

    ``placement`` is where it trains: resolved from ``train`` once, here, unless the caller did.
    """

    unit = "step"

    def __init__(self, cfg: SeqConfig, placement: Placement | None = None) -> None:
        self.cfg = cfg
        t = cfg.train
        self.placement = placement or resolve_placement(t)
        self.device = self.placement.device
        torch.manual_seed(cfg.seed)  # weights (drawn on the CPU) and dropout
        self.task = make_task(cfg, self.device)
        self.model = self.task.model
        self.model.train()
        self.optimizer = make_optimizer(
            "adamw", self.model.parameters(), self.device, lr=t.lr, weight_decay=t.weight_decay
        )
        self.target = t.target or self.task.default_target
        self.params = count_params(self.model)
        self.position = 0
        self.total = t.steps
        self.wall_s = 0.0  # training + evaluation
        self.train_s = 0.0  # training only
        self.tokens = 0
        self.time_to_target_s: float | None = None
        self.steps_to_target: int | None = None
        self.history: dict[str, list[tuple[int, float]]] = {}

    def train_steps(self, n: int) -> float:
        """``n`` optimizer steps; returns the mean training loss as optimized (nats for char_lm, MSE
        otherwise; ``task.train_metrics`` reports it in the held-out loss's unit)."""
        clip = self.cfg.train.clip_grad_norm
        synchronize(self.device)
        start = time.perf_counter()
        total = torch.zeros((), device=self.device)
        for _ in range(n):
            with self.placement.autocast():
                loss, tokens = self.task.train_loss()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            total += loss.detach()
            self.tokens += tokens
            self.position += 1
        synchronize(self.device)
        elapsed = time.perf_counter() - start
        self.train_s += elapsed
        self.wall_s += elapsed
        return float(total) / max(n, 1)

    def run_chunk(self) -> dict[str, float]:
        """Train ``report_every`` steps (fewer at the end), evaluate on held-out data, report."""
        n = min(self.cfg.train.report_every, self.total - self.position)
        mean_loss = self.train_steps(n)
        start = time.perf_counter()
        metrics = self.task.evaluate()
        self.wall_s += time.perf_counter() - start
        if self.time_to_target_s is None and metrics["val_loss"] <= self.target:
            self.time_to_target_s, self.steps_to_target = self.wall_s, self.position
        metrics.update(self.task.train_metrics(mean_loss))
        metrics.update(
            {
                "tokens_per_s": self.tokens / max(self.train_s, 1e-9),
                "params": float(self.params),
                "wall_s": self.wall_s,
                "target": self.target,
            }
        )
        if self.time_to_target_s is not None:
            metrics["time_to_target_s"] = self.time_to_target_s
            metrics["steps_to_target"] = float(self.steps_to_target or 0)
        for k, v in metrics.items():
            self.history.setdefault(k, []).append((self.position, v))
        return metrics

    # -- state and artifacts ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, every tensor on the CPU (loadable on either device)."""
        cuda_rng = {"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}
        return to_cpu(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "task": self.task.state_dict(),
                "torch_rng": torch.get_rng_state(),
                **cuda_rng,
                "position": self.position,
                "wall_s": self.wall_s,
                "train_s": self.train_s,
                "tokens": self.tokens,
                "time_to_target_s": self.time_to_target_s,
                "steps_to_target": self.steps_to_target,
                "history": {k: [list(p) for p in v] for k, v in self.history.items()},
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ConfigError(
                f"checkpoint does not fit this model (cell, sizes or vocabulary differ): {e}"
            ) from e
        self.optimizer.load_state_dict(state["optimizer"])
        restore_optimizer(self.optimizer)  # this device's flags, step counters and memory layouts
        self.task.load_state_dict(state["task"], position=int(state["position"]))
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:  # from a CPU run: dropout keeps its seed
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.position = int(state["position"])
        self.wall_s, self.train_s = float(state["wall_s"]), float(state["train_s"])
        self.tokens = int(state["tokens"])
        self.time_to_target_s = state["time_to_target_s"]
        self.steps_to_target = state["steps_to_target"]
        self.history = {k: [(int(p[0]), float(p[1])) for p in v] for k, v in state["history"].items()}

    def describe(self) -> dict[str, str]:
        """Where it trains, and the unit of its losses (train and held-out alike)."""
        return {
            **self.placement.describe(),
            "loss_unit": self.task.loss_unit,
        }

    def datasets(self) -> list[DataCard]:
        return self.task.data_cards()

    def models(self) -> dict[str, tuple[Any, np.ndarray]]:
        return {"model": self.task.export()}

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """Learning curves, plus generated text (char_lm) or a prediction plot (regression)."""
        from components.seq.plots import plot_learning_curves  # matplotlib: only pictures need it

        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        if self.history:
            title = f"{self.cfg.task}: {self.cfg.model.cell} ({self.cfg.model.impl}), {self.params:,} params"
            paths.append(
                plot_learning_curves(self.history, out_dir / "learning_curves.png", title, self.target)
            )
        paths.extend(self.task.artifacts(out_dir, self.position, final))
        return paths
