"""Network shapes, conv sizing and normalisation choices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.config import ConfigError
from components.gan.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    build_networks,
    dcgan_start_size,
    default_labels,
)


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


def test_a_conditional_generator_reads_the_one_hot_class_beside_z_and_draws_classes_in_turn() -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(16, (1, 8, 8), 8, 2, classes=10).eval()
    assert g.project.in_features == 16 + 10
    z = torch.randn(23, 16)
    turns = torch.arange(23) % 10
    assert torch.equal(default_labels(23, 10, torch.device("cpu")), turns)
    assert torch.equal(g(z), g(z, turns))  # no classes given: 0, 1, …, 9, 0, …
    # the projection's input is exactly [z, one_hot(y)]
    y = torch.tensor([3] * 23)
    projected = torch.cat([z, nn.functional.one_hot(y, 10).float()], 1) @ g.project.weight.T
    h = g.project_norm(projected.view(23, g.c0, g.h0, g.w0))
    assert torch.allclose(g(z, y), g.body(h), atol=1e-6)
    assert not torch.allclose(g(z, y), g(z, (y + 1) % 10))  # the class changes the image


def test_a_projection_discriminator_adds_the_class_embedding_dotted_with_its_features() -> None:
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 28, 28), 8, 2, "layer", classes=10)
    x, y = torch.randn(5, 1, 28, 28), torch.tensor([0, 1, 2, 9, 9])
    phi = d.body(x).flatten(1)  # [5, 16·7·7]
    assert d.embed.weight.shape == (10, phi.shape[1])
    expected = phi @ d.head.weight[0] + d.head.bias + (d.embed.weight[y] * phi).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-5)
    with pytest.raises(ValueError, match="needs the class y"):
        d(x)


def test_unconditional_networks_start_from_the_same_weights_as_before_classes_existed() -> None:
    """The class embedding is made after every other layer, so an unconditional build draws the same
    initial weights and every seeded run is unchanged."""
    torch.manual_seed(0)
    plain = DCGANDiscriminator((1, 8, 8), 8, 2, "batch")
    torch.manual_seed(0)
    conditional = DCGANDiscriminator((1, 8, 8), 8, 2, "batch", classes=10)
    for name, p in plain.state_dict().items():
        assert torch.equal(p, conditional.state_dict()[name]), name


@pytest.mark.parametrize("classes", [0, 10])
def test_an_exported_dcgan_generator_takes_any_batch_size(classes: int) -> None:
    """The MLflow models are saved with torch.export from a batch of 4 latents; a forward that read
    len(z) froze the batch at 4 (a served generator then refused 10 latents)."""
    torch.manual_seed(0)
    g = DCGANGenerator(16, (1, 28, 28), 8, 2, classes=classes).eval()
    exported = torch.export.export(g, (torch.randn(4, 16),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    z = torch.randn(10, 16)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(z), g(z))
