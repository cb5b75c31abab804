"""Typed config of the sequence-model family (``adl train seq``); values live in ``configs/seq/``.

Where the trainer runs (``train.device``, ``train.precision``, ``train.tf32``, ``train.threads``: the
section every trainer shares, ``components/device_names.DeviceFields``) is part of the same config, so
a sweep can vary it like any other key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.config import ConfigError, param, section
from components.device_names import DeviceFields


@dataclass(frozen=True)
class ModelConfig:
    """Recurrent cell, implementation and sizes."""

    cell: Literal["lstm", "gru"] = param("lstm", "recurrent cell")
    impl: Literal["fused", "explicit"] = param(
        "fused", "fused: nn.LSTM/nn.GRU kernels; explicit: cells from the equations"
    )
    gru_reset_after: bool = param(
        False, "explicit GRU only: PyTorch's reset-after form instead of Cho et al.'s"
    )
    hidden_size: int = param(256, "hidden units per recurrent layer", ge=1)
    num_layers: int = param(2, "stacked recurrent layers", ge=1)
    embed_dim: int = param(64, "char_lm: character embedding size", ge=1)
    dropout: float = param(
        0.1, "char_lm: dropout on embeddings, between layers and before the output", ge=0, lt=1
    )


@dataclass(frozen=True)
class DataConfig:
    """Where the sequences come from."""

    source: Literal["stdlib", "file", "markov"] = param(
        "stdlib", "char_lm text: stdlib (pydoc_data.topics), file (data.path) or markov (synthetic)"
    )
    path: str | None = param(None, "char_lm with source=file: path of a UTF-8 text file")
    val_fraction: float = param(0.1, "char_lm: last fraction of the text held out for bpc", gt=0, lt=1)
    max_chars: int = param(0, "char_lm: use only the first N characters (0 = all)", ge=0)
    markov_alphabet: int = param(4, "markov: alphabet size K", ge=2, le=26)
    markov_order: int = param(2, "markov: order k (the next char depends on the previous k)", ge=1, le=6)
    markov_concentration: float = param(
        0.5, "markov: Dirichlet α of each transition row (small = peaked)", gt=0
    )
    markov_length: int = param(200_000, "markov: characters generated (train + held out)", ge=1000)
    data_seed: int = param(
        1234, "synthetic data: seed of the Markov table and sample, and of the regression weights", ge=0
    )
    length: int = param(50, "adding/regression: sequence length T", ge=2)
    input_dim: int = param(10, "regression: input features per step", ge=1)
    noise_std: float = param(0.1, "regression: target noise σ (σ² is the best achievable MSE)", ge=0)


@dataclass(frozen=True)
class TrainConfig(DeviceFields):
    """Optimisation, truncated BPTT, reporting, and where and how fast the trainer runs."""

    steps: int = param(2000, "optimizer steps", ge=1)
    batch_size: int = param(64, "sequences (char_lm: parallel streams) per step", ge=1)
    bptt: int = param(128, "char_lm: truncated-BPTT window in characters", ge=1)
    lr: float = param(2e-3, "Adam learning rate", gt=0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0)
    clip_grad_norm: float = param(1.0, "clip the global gradient norm to this (0 = off)", ge=0)
    report_every: int = param(100, "steps between held-out evaluations (one run_chunk)", ge=1)
    eval_chars: int = param(65536, "char_lm: held-out characters scored per evaluation (0 = all)", ge=0)
    eval_batches: int = param(8, "adding/regression: held-out batches per evaluation", ge=1)
    target: float = param(0.0, "held-out val_loss whose first crossing is timed (0 = task default)", ge=0)


@dataclass(frozen=True)
class SampleConfig:
    """Generated text logged as artifacts (char_lm)."""

    length: int = param(400, "characters generated per sample", ge=0)
    temperatures: list[float] = param(factory=lambda: [0.5, 0.8, 1.0], doc="one sample per temperature")
    prime: str = param("The ", "text the samples start from (characters outside the vocabulary are dropped)")


@dataclass(frozen=True)
class SeqConfig:
    """Sequence models: a char LM with truncated BPTT, or a last-step regressor (adding / regression)."""

    seed: int = param(0, "seed for weights, batches and sampling", ge=0)
    task: Literal["char_lm", "adding", "regression"] = param("char_lm", "what to learn")
    model: ModelConfig = section(ModelConfig)
    data: DataConfig = section(DataConfig)
    train: TrainConfig = section(TrainConfig)
    sample: SampleConfig = section(SampleConfig)

    def validate(self) -> None:
        if self.task == "char_lm" and self.data.source == "file" and not self.data.path:
            raise ConfigError(
                "data.path: required when data.source is 'file' (the path of a UTF-8 text file)"
            )
        if self.data.path and self.data.source != "file":
            raise ConfigError(
                f"data.path is set but data.source is {self.data.source!r}; set data.source: file"
            )
        if any(t <= 0 for t in self.sample.temperatures):
            raise ConfigError(f"sample.temperatures: {self.sample.temperatures} must all be > 0")
