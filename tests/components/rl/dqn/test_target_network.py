from __future__ import annotations

import pytest
import torch
from torch import nn

from components.rl.dqn.target_network import TargetPair


def _pair() -> TargetPair:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    return TargetPair(net)


def test_target_starts_as_a_frozen_copy():
    pair = _pair()
    assert pair.target is not pair.online
    assert pair.target[0].weight.item() == 2.0
    assert not any(p.requires_grad for p in pair.target.parameters())
    assert all(p.requires_grad for p in pair.online.parameters())


def test_hard_copy_and_polyak_by_hand():
    pair = _pair()
    with torch.no_grad():
        pair.online[0].weight.fill_(3.0)
        pair.online[1].running_mean.fill_(5.0)
    pair.sync(0.1)
    assert pair.target[0].weight.item() == pytest.approx(0.1 * 3.0 + 0.9 * 2.0)  # 2.1
    assert pair.target[1].running_mean.item() == 5.0  # buffers are copied as they are
    pair.sync(0.1)
    assert pair.target[0].weight.item() == pytest.approx(0.1 * 3.0 + 0.9 * 2.1)  # 2.19
    pair.sync(1.0)
    assert pair.target[0].weight.item() == 3.0
    with torch.no_grad():
        pair.online[0].weight.fill_(-1.0)
    assert pair.target[0].weight.item() == 3.0  # a copy, not a view


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.5])
def test_tau_outside_zero_one_is_refused(tau):
    with pytest.raises(ValueError, match="tau"):
        _pair().sync(tau)
