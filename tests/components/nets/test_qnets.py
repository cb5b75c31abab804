"""The Q-networks as DQN builds them (components/nets/qnets.py via networks.py), and flat weight transport."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.nets.conv_arithmetic import conv_stack_output_size
from components.nets.qnets import MLPQNetwork, NatureCNN, NumpyMLP, QHead, inference_copy
from components.rl.dqn.config import NetworkConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights, set_flat_weights


def test_nature_cnn_shapes_follow_conv_arithmetic():
    torch.manual_seed(0)
    net = build_q_network(NetworkConfig(kind="cnn", head_hidden=32), (4, 84, 84), 6)
    assert isinstance(net, NatureCNN)
    side = conv_stack_output_size(84, [(8, 4, 0), (4, 2, 0), (3, 1, 0)])
    assert net.conv_out_shape == (64, side, side) == (64, 7, 7)
    x = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert net(x).shape == (3, 6)
    assert tuple(net.body(x.float()).shape) == (3, 64 * 7 * 7)


def test_mlp_shapes():
    net = build_q_network(NetworkConfig(kind="mlp", hidden=[16, 8], head_hidden=4), (4,), 2)
    assert isinstance(net, MLPQNetwork)
    assert net(torch.zeros(5, 4)).shape == (5, 2)


def test_inference_copy_folds_batch_norm_and_matches_eval_mode():
    torch.manual_seed(0)
    net = NatureCNN(4, (84, 84), 5, head_hidden=32, batch_norm=True)
    with torch.no_grad():  # a few train-mode forwards, so running mean/var move away from 0/1
        for _ in range(3):
            net(torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8))
    bn = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bn) == 3 and all(m.running_mean.abs().max() > 1e-3 for m in bn)
    net.eval()
    fast = inference_copy(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in fast.modules()) == 3
    assert not any(p.requires_grad for p in fast.parameters())
    x = torch.randint(0, 256, (6, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched


def test_dueling_head_centres_the_advantages():
    torch.manual_seed(0)
    head = QHead(8, 4, hidden=16, dueling=True)
    h = torch.randn(5, 8)
    q = head(h)
    a = head.advantage(h)
    torch.testing.assert_close(q - q.mean(1, keepdim=True), a - a.mean(1, keepdim=True))
    # and the mean over actions of Q is the value stream
    torch.testing.assert_close(q.mean(1), head.value(h).squeeze(1))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_flat_weights_round_trip(batch_norm):
    cfg = NetworkConfig(kind="cnn", head_hidden=16, batch_norm=batch_norm)
    torch.manual_seed(0)
    src = build_q_network(cfg, (2, 36, 36), 3)
    torch.manual_seed(1)
    dst = build_q_network(cfg, (2, 36, 36), 3)
    x = torch.randint(0, 256, (4, 2, 36, 36), dtype=torch.uint8)
    if batch_norm:
        with torch.no_grad():
            src(x)  # moves src's running statistics, which must travel too
    src.eval()
    dst.eval()
    with torch.no_grad():
        assert not torch.allclose(src(x), dst(x))
        flat = get_flat_weights(src)
        floats = [t for t in src.state_dict().values() if t.is_floating_point()]
        assert flat.dtype == np.float32 and flat.shape == (sum(t.numel() for t in floats),)
        set_flat_weights(dst, flat)
        torch.testing.assert_close(src(x), dst(x), atol=0, rtol=0)
        np.testing.assert_array_equal(get_flat_weights(dst), flat)
    with pytest.raises(ValueError, match="needs"):
        set_flat_weights(dst, flat[:-1])


@pytest.mark.parametrize("hidden,dueling", [((64,), True), ((32, 16), False), ((128,), True)])
def test_numpy_mlp_equals_the_torch_forward_and_follows_in_place_weight_updates(hidden, dueling):
    torch.manual_seed(0)
    net = MLPQNetwork(6, 3, hidden=hidden, head_hidden=24, dueling=dueling)
    fast = NumpyMLP(net)
    x = torch.randn(9, 6) * 3
    with torch.no_grad():
        np.testing.assert_allclose(fast(x.numpy()), net(x).numpy(), rtol=1e-5, atol=1e-5)
    other = MLPQNetwork(6, 3, hidden=hidden, head_hidden=24, dueling=dueling)
    set_flat_weights(net, get_flat_weights(other))  # in place: the numpy views see it
    with torch.no_grad():
        np.testing.assert_allclose(fast(x.numpy()), other(x).numpy(), rtol=1e-5, atol=1e-5)
    assert fast(x.numpy()).dtype == np.float32
