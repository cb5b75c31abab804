"""Q-networks: an MLP for vector observations, a CNN for frames (the Nature DQN's by default), dueling heads.

The CNN's flattened size comes from conv arithmetic, not from a dummy forward pass, so a wrong
frame size fails at construction with the layer that no longer fits. Networks only map
observations to Q-values; learners own the optimizers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from components.nets.conv_arithmetic import conv_output_size

# Mnih et al. 2015: 32 8×8 stride 4, 64 4×4 stride 2, 64 3×3 stride 1, then 512 units.
NATURE_CONVS: tuple[tuple[int, int, int], ...] = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


class QHead(nn.Module):
    """Q(s, ·) from features: a plain linear head, or dueling V(s) + A(s, a) − mean_a A(s, a)."""

    def __init__(self, in_features: int, n_actions: int, hidden: int, dueling: bool) -> None:
        super().__init__()
        self.dueling = dueling
        if dueling:
            self.value = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            self.advantage = nn.Sequential(
                nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_actions)
            )
        else:
            self.q = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.q(h)  # type: ignore[no-any-return]
        a = self.advantage(h)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)  # type: ignore[no-any-return]


class MLPQNetwork(nn.Module):
    """Vector observation [B, D] → Q-values [B, A]."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (256,),
        head_hidden: int = 256,
        dueling: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = QHead(width, n_actions, head_hidden, dueling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(obs.float()))  # type: ignore[no-any-return]


class NatureCNN(nn.Module):
    """Frames [B, C, H, W] → Q-values [B, A]: a stack of ReLU convs (``convs``, each (out channels,
    kernel, stride); Mnih et al. 2015 by default), optional batch norm, then a Q head.

    uint8 frames (ALE screens) are scaled to [0, 1]; boolean frames (MinAtar's object maps) are
    already 0/1 and only become floats.
    """

    def __init__(
        self,
        in_channels: int,
        frame_size: tuple[int, int],
        n_actions: int,
        head_hidden: int = 512,
        dueling: bool = True,
        batch_norm: bool = False,
        convs: Sequence[Sequence[int]] = NATURE_CONVS,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size: int | tuple[int, int] = frame_size
        channels = in_channels
        for out_ch, kernel, stride in convs:
            layers.append(nn.Conv2d(channels, out_ch, kernel, stride, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU())
            size = conv_output_size(size, kernel, stride)
            channels = out_ch
        assert isinstance(size, tuple)
        self.conv_out_shape = (channels, size[0], size[1])
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = QHead(channels * size[0] * size[1], n_actions, head_hidden, dueling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        return self.head(self.body(x))  # type: ignore[no-any-return]


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv whose output equals bn(conv(x)) in eval mode: W' = W·γ/σ, b' = (b − μ)·γ/σ + β."""
    assert bn.running_mean is not None and bn.running_var is not None, "fold needs tracked BN statistics"
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    geometry: dict[str, Any] = {
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
    }
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, bias=True, **geometry)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)  # type: ignore[union-attr]
    return fused


def inference_copy(net: nn.Module) -> nn.Module:
    """A no-grad eval copy for collectors, with every Conv2d→BatchNorm2d pair folded into one conv."""
    net = copy.deepcopy(net).eval()
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            out: list[nn.Module] = []
            i = 0
            while i < len(children):
                if (
                    isinstance(children[i], nn.Conv2d)
                    and i + 1 < len(children)
                    and isinstance(children[i + 1], nn.BatchNorm2d)
                ):
                    out.append(fold_batch_norm(children[i], children[i + 1]))  # type: ignore[arg-type]
                    i += 2
                else:
                    out.append(children[i])
                    i += 1
            module._modules = {str(k): m for k, m in enumerate(out)}  # type: ignore[assignment]
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class NumpyMLP:
    """The forward pass of an :class:`MLPQNetwork` in numpy, over views of the network's own weights.

    Collectors evaluate a few observations at a time, where torch's per-operator overhead (~10 µs
    for each of a dueling MLP's dozen ops) is most of the cost; numpy does the same arithmetic in
    a fraction of it. The arrays are views: weights copied into ``net`` in place (as
    ``set_flat_weights`` does) are what the next call uses.
    """

    def __init__(self, net: MLPQNetwork) -> None:
        def layers(seq: nn.Sequential) -> list[tuple[Any, Any]]:
            return [
                (m.weight.detach().numpy().T, m.bias.detach().numpy())
                for m in seq
                if isinstance(m, nn.Linear)
            ]

        self.body = layers(net.body)
        head = net.head
        self.dueling = head.dueling
        self.value = layers(head.value) if head.dueling else []
        self.advantage = layers(head.advantage) if head.dueling else layers(head.q)

    @staticmethod
    def _mlp(x: Any, layers: list[tuple[Any, Any]], relu_last: bool) -> Any:
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if relu_last or i < len(layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x

    def __call__(self, obs: Any) -> Any:
        h = self._mlp(np.asarray(obs, dtype=np.float32), self.body, relu_last=True)
        a = self._mlp(h, self.advantage, relu_last=False)
        if not self.dueling:
            return a
        return self._mlp(h, self.value, relu_last=False) + a - a.mean(axis=1, keepdims=True)
