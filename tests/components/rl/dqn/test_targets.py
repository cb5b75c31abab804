from __future__ import annotations

import pytest
import torch

from components.rl.dqn.targets import dqn_loss, huber, td_target

GAMMA = 0.9


def _batch() -> dict[str, torch.Tensor]:
    """Four n-step windows, γ = 0.9, worked by hand (rewards already summed by the accumulator)."""
    return {
        # 0: a full window of n = 3: R = 1.
        # 1: terminated after 2 steps (r = 1, 2): R = 1 + 0.9·2 = 2.8, done, no bootstrap.
        # 2: a time limit cut the window after 2 steps (r = 0.5, 0.5): R = 0.5 + 0.9·0.5 = 0.95, not done,
        #    bootstraps with γ² from the state where it was cut.
        # 3: n = 1, R = −1.
        "reward": torch.tensor([1.0, 2.8, 0.95, -1.0]),
        "done": torch.tensor([0.0, 1.0, 0.0, 0.0]),
        "n": torch.tensor([3.0, 2.0, 2.0, 1.0]),
        "next_q_online": torch.tensor([[1.0, 3.0, 2.0], [9.0, 0.0, 0.0], [0.0, 0.0, 1.0], [2.0, 1.0, 0.0]]),
        "next_q_target": torch.tensor([[5.0, 4.0, 6.0], [7.0, 7.0, 7.0], [10.0, -1.0, 2.0], [0.5, 3.0, 1.0]]),
    }


def test_double_dqn_n_step_target_by_hand():
    y = td_target(**_batch(), gamma=GAMMA, double=True)
    expected = [
        1.0 + 0.729 * 4.0,  # a* = argmax online = 1 → Q_target = 4; γ³ = 0.729 → 3.916
        2.8,  # done: the reward alone
        0.95 + 0.81 * 2.0,  # a* = 2 → Q_target = 2; γ² = 0.81 → 2.57
        -1.0 + 0.9 * 0.5,  # a* = 0 → Q_target = 0.5 → −0.55
    ]
    torch.testing.assert_close(y, torch.tensor(expected))
    torch.testing.assert_close(y, torch.tensor([3.916, 2.8, 2.57, -0.55]))


def test_plain_dqn_target_takes_the_target_max():
    y = td_target(**_batch(), gamma=GAMMA, double=False)
    # max Q_target: 6, (done), 10, 3 → 1 + 0.729·6, 2.8, 0.95 + 0.81·10, −1 + 0.9·3
    torch.testing.assert_close(y, torch.tensor([5.374, 2.8, 9.05, 1.7]))


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    x = torch.tensor([-3.0, -1.0, 0.5, 2.0, 3.0])
    torch.testing.assert_close(huber(x, 1.0), torch.tensor([2.5, 0.5, 0.125, 1.5, 2.5]))
    # δ = 2: ½x² for |x| ≤ 2, else 2·(|x| − 1)
    torch.testing.assert_close(huber(x, 2.0), torch.tensor([4.0, 0.5, 0.125, 2.0, 4.0]))


def test_dqn_loss_weighted_huber_and_its_gradient_by_hand():
    q = torch.tensor([0.0, 2.0, 1.0, 3.0], requires_grad=True)
    y = torch.tensor([0.5, 0.0, 4.0, 3.0], requires_grad=True)  # must be treated as a constant
    w = torch.tensor([1.0, 0.5, 0.25, 1.0])
    loss, td = dqn_loss(q, y, w, huber_delta=1.0)
    # δ = y − q = [0.5, −2, 3, 0]; Huber = [0.125, 1.5, 2.5, 0]; ·w = [0.125, 0.75, 0.625, 0]; mean = 0.375
    torch.testing.assert_close(td, torch.tensor([0.5, -2.0, 3.0, 0.0]))
    assert not td.requires_grad
    assert loss.item() == pytest.approx(0.375)
    loss.backward()
    # ∂L/∂q_i = −w_i·clip(δ_i, −1, 1)/B = −[0.5, −0.5, 0.25, 0]/4
    torch.testing.assert_close(q.grad, torch.tensor([-0.125, 0.125, -0.0625, 0.0]))
    assert y.grad is None
