"""Network shapes, conv sizing and normalisation choices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.config import ConfigError
from components.gan.nets import DCGANDiscriminator, DCGANGenerator, build_networks, dcgan_start_size


@pytest.mark.parametrize(("shape", "stages"), [((1, 8, 8), 2), ((3, 32, 32), 3), ((1, 28, 28), 2)])
def test_dcgan_shapes(shape: tuple[int, int, int], stages: int) -> None:
    g, d = DCGANGenerator(16, shape, 8, stages), DCGANDiscriminator(shape, 8, stages, "layer")
    x = g(torch.randn(5, 16))
    assert x.shape == (5, *shape)
    assert x.abs().max().item() <= 1.0  # tanh output
    assert d(x).shape == (5,)


def test_dcgan_start_size_and_impossible_sizes() -> None:
    assert dcgan_start_size((8, 8), 2) == (2, 2)
    assert dcgan_start_size((28, 28), 2) == (7, 7)
    with pytest.raises(ConfigError, match="cannot produce size 10"):
        dcgan_start_size((10, 10), 2)


def test_build_networks_picks_norms_by_loss() -> None:
    g, d = build_networks("auto", (1, 8, 8), 8, 8, 2, 2, "auto", "auto", "wgan_gp")
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())  # per-sample penalty
    assert any(isinstance(m, nn.GroupNorm) for m in d.modules())
    _, d = build_networks("auto", (1, 8, 8), 8, 8, 2, 2, "auto", "auto", "nonsaturating")
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    g, d = build_networks("auto", (2,), 2, 16, 3, 2, "auto", "auto", "nonsaturating")
    assert g(torch.randn(4, 2)).shape == (4, 2) and d(torch.randn(4, 2)).shape == (4,)
    assert sum(isinstance(m, nn.Linear) for m in g.modules()) == 4  # 3 hidden layers + output
    with pytest.raises(ConfigError, match="needs \\[C, H, W\\] images"):
        build_networks("dcgan", (2,), 2, 16, 3, 2, "auto", "auto", "wgan")


def test_layer_norm_critic_scores_each_sample_independently() -> None:
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 8, 8), 8, 2, "layer")
    x = torch.randn(6, 1, 8, 8)
    full = d(x)
    single = torch.cat([d(x[i : i + 1]) for i in range(6)])
    assert torch.allclose(full, single, atol=1e-6)
