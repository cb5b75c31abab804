"""Generators and discriminators/critics: MLPs for vectors, DCGAN-style convnets for images.

Networks only map inputs to outputs; trainers own the optimisers. Discriminators return one
unnormalised score per sample (a logit for the classic GAN, a critic value for WGANs), so the
losses decide what the score means. Conv networks are sized with the conv arithmetic up front,
so an image size the stack cannot produce fails at construction with the sizes spelled out.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from components.config import ConfigError
from components.nets.conv_arithmetic import conv_output_size, conv_transpose_output_size

# DCGAN's stride-2 block: kernel 4, stride 2, padding 1 halves (conv) or doubles (transposed) a size.
KERNEL, STRIDE, PADDING = 4, 2, 1


def _mlp(sizes: list[int], norm: str, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if norm == "batch":
                layers.append(nn.BatchNorm1d(b))
            elif norm == "layer":
                layers.append(nn.LayerNorm(b))
            layers.append(act())
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z [B, z_dim] → x [B, *out_shape] through ``layers`` ReLU layers; linear output (unbounded data)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: int, layers: int, norm: str = "none"):
        super().__init__()
        self.out_shape = out_shape
        self.net = _mlp([z_dim] + [hidden] * layers + [math.prod(out_shape)], norm, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)  # not len(z): torch.export keeps the batch free


class MLPDiscriminator(nn.Module):
    """x [B, *in_shape] → score [B] through ``layers`` LeakyReLU(0.2) layers."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int, layers: int, norm: str = "none"):
        super().__init__()
        self.net = _mlp([math.prod(in_shape)] + [hidden] * layers + [1], norm, _LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class FixedGaussianGenerator(nn.Module):
    """G(z) = mean + std·z₁ [B, 1]: N(mean, std²) from the first latent coordinate, with no parameters.

    A generator that never learns, so a discriminator can be trained alone against a known p_G and
    compared with the optimal D* (see :mod:`components.gan.optimal`).
    """

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * z[:, :1]


class _LeakyReLU(nn.LeakyReLU):
    def __init__(self) -> None:
        super().__init__(0.2)


def dcgan_start_size(image_hw: tuple[int, int], stages: int) -> tuple[int, int]:
    """The spatial size the generator starts from so that ``stages`` doublings give ``image_hw``."""
    start = []
    for s in image_hw:
        size = s
        for _ in range(stages):
            size //= STRIDE
        if size < 1 or _up(size, stages) != s:
            raise ConfigError(
                f"model.conv_stages: {stages} stride-2 stages cannot produce size {s} "
                f"(each stage doubles; {s} must be a multiple of {STRIDE**stages})"
            )
        start.append(size)
    return start[0], start[1]


def _up(size: int, stages: int) -> int:
    for _ in range(stages):
        size = int(conv_transpose_output_size(size, KERNEL, STRIDE, PADDING))  # type: ignore[arg-type]
    return size


def default_labels(n: int, classes: int, device: torch.device) -> torch.Tensor:
    """The classes a conditional generator draws when none are given: 0, 1, …, K−1, 0, 1, … [n]."""
    return torch.arange(n, device=device) % classes


class DCGANGenerator(nn.Module):
    """z → Linear → [C·2^(S−1), h0, w0] → S transposed-conv doublings → tanh image [B, C, H, W].

    Batch norm after every hidden layer (DCGAN); the output layer has none and a tanh, matching
    data scaled to [−1, 1]. With ``classes`` K > 0 it is class-conditional (Mirza & Osindero 2014):
    the projection reads z beside the one-hot class, ``forward(z, y)``; without ``y`` it draws the
    classes in turn (:func:`default_labels`), so any batch of K·m latents holds m of each.
    """

    def __init__(
        self,
        z_dim: int,
        image_shape: tuple[int, int, int],
        base: int,
        stages: int,
        norm: str = "batch",
        classes: int = 0,
    ):
        super().__init__()
        c, h, w = image_shape
        self.classes = classes
        self.h0, self.w0 = dcgan_start_size((h, w), stages)
        self.c0 = base * 2 ** (stages - 1)
        self.project = nn.Linear(z_dim + classes, self.c0 * self.h0 * self.w0, bias=norm != "batch")
        self.project_norm: nn.Module = nn.BatchNorm2d(self.c0) if norm == "batch" else nn.Identity()
        blocks: list[nn.Module] = [nn.ReLU()]
        ch = self.c0
        for i in range(stages):
            last = i == stages - 1
            out = c if last else ch // 2
            blocks.append(nn.ConvTranspose2d(ch, out, KERNEL, STRIDE, PADDING, bias=last or norm != "batch"))
            if not last:
                if norm == "batch":
                    blocks.append(nn.BatchNorm2d(out))
                blocks.append(nn.ReLU())
            ch = out
        blocks.append(nn.Tanh())
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes:
            if y is None:
                y = default_labels(z.shape[0], self.classes, z.device)
            z = torch.cat([z, nn.functional.one_hot(y, self.classes).to(z.dtype)], dim=1)
        x = self.project(z).view(z.shape[0], self.c0, self.h0, self.w0)
        return self.body(self.project_norm(x))


class DCGANDiscriminator(nn.Module):
    """Image → S stride-2 convs (LeakyReLU 0.2) → Linear → score [B].

    ``norm``: batch (DCGAN; not the first layer), layer (per-sample, allowed with a gradient
    penalty) or none. The linear head is sized with :func:`conv_output_size`. With ``classes`` K > 0
    it is a projection discriminator (Miyato & Koyama 2018): score(x, y) = w·φ(x) + b + e_y·φ(x),
    φ(x) the flattened conv features and e_y a learned embedding of the class; ``y`` is then required.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], base: int, stages: int, norm: str = "batch", classes: int = 0
    ):
        super().__init__()
        self.classes = classes
        c, h, w = image_shape
        layers: list[nn.Module] = []
        size: tuple[int, int] = (h, w)
        ch = c
        for i in range(stages):
            out = base * 2**i
            try:
                size = conv_output_size(size, KERNEL, STRIDE, PADDING)  # type: ignore[assignment]
            except ValueError as e:
                raise ConfigError(
                    f"model.conv_stages: {stages} stages are too many for {h}×{w} images ({e})"
                ) from e
            layers.append(nn.Conv2d(ch, out, KERNEL, STRIDE, PADDING, bias=not (norm == "batch" and i > 0)))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(out))
            elif i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, out))  # layer norm over [C, H, W] of each sample
            layers.append(nn.LeakyReLU(0.2))
            ch = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * size[0] * size[1], 1)
        if classes:
            self.embed = nn.Embedding(classes, self.head.in_features)
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = self.body(x).flatten(1)
        score = self.head(features).squeeze(1)
        if self.classes:
            if y is None:
                raise ValueError("a conditional discriminator needs the class y of each sample")
            score = score + (self.embed(y) * features).sum(1)
        return score


def build_networks(
    arch: str,
    sample_shape: tuple[int, ...],
    z_dim: int,
    hidden: int,
    layers: int,
    stages: int,
    g_norm: str,
    d_norm: str,
    loss: str,
    generator: str = "learned",
    fixed: tuple[float, float] = (0.0, 1.0),
    classes: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for a sample shape, with 'auto' choices resolved (see ModelConfig).

    ``classes`` > 0 makes both DCGAN networks class-conditional (one-hot into G, projection in D).

    ``generator="fixed_gaussian"`` returns :class:`FixedGaussianGenerator` with (mean, std) ``fixed``
    for 1-D samples, beside the usual discriminator.
    """
    is_image = len(sample_shape) == 3
    if arch == "auto":
        arch = "dcgan" if is_image else "mlp"
    if arch == "dcgan" and not is_image:
        raise ConfigError(
            f"model.arch: 'dcgan' needs [C, H, W] images; this data has samples of shape "
            f"{list(sample_shape)}; allowed: mlp, auto"
        )
    if generator == "fixed_gaussian":
        if sample_shape != (1,):
            raise ConfigError(
                f"model.generator: 'fixed_gaussian' draws 1-D samples; this data has samples of shape "
                f"{list(sample_shape)}; allowed: learned"
            )
        critic = MLPDiscriminator(sample_shape, hidden, layers, "none" if d_norm == "auto" else d_norm)
        return FixedGaussianGenerator(*fixed), critic
    if g_norm == "auto":
        g_norm = "batch" if arch == "dcgan" else "none"
    if d_norm == "auto":
        d_norm = "none" if arch == "mlp" else ("layer" if loss == "wgan_gp" else "batch")
    if arch == "dcgan":
        shape = (sample_shape[0], sample_shape[1], sample_shape[2])
        return (
            DCGANGenerator(z_dim, shape, hidden, stages, g_norm, classes),
            DCGANDiscriminator(shape, hidden, stages, d_norm, classes),
        )
    return (
        MLPGenerator(z_dim, sample_shape, hidden, layers, g_norm),
        MLPDiscriminator(sample_shape, hidden, layers, d_norm),
    )
