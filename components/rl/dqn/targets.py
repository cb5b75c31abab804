"""DQN targets and losses as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def td_target(
    reward: torch.Tensor,  # [B] n-step discounted return Σ_{k<n} γ^k r_{t+k}
    done: torch.Tensor,  # [B] 1 where the episode terminated inside the window
    n: torch.Tensor,  # [B] steps in the window (shorter at episode ends and truncations)
    next_q_online: torch.Tensor,  # [B, A] Q_online(s_{t+n}, ·)
    next_q_target: torch.Tensor,  # [B, A] Q_target(s_{t+n}, ·)
    gamma: float,
    double: bool = True,
) -> torch.Tensor:
    """y = R + γⁿ·(1 − done)·Q_target(s', a*).

    Double DQN (van Hasselt et al. 2016) picks a* = argmax_a Q_online(s', a) and evaluates it with the
    target network; plain DQN takes max_a Q_target(s', a). A truncated window (time limit) is not
    ``done``: it bootstraps from the state where it was cut.
    """
    if double:
        best = next_q_online.argmax(dim=1, keepdim=True)
        bootstrap = next_q_target.gather(1, best).squeeze(1)
    else:
        bootstrap = next_q_target.max(dim=1).values
    discount = torch.pow(torch.full_like(reward, gamma), n.to(reward.dtype))
    return reward + discount * (1.0 - done.to(reward.dtype)) * bootstrap


def huber(td_error: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Elementwise Huber loss: ½x² for |x| ≤ δ, δ(|x| − ½δ) beyond."""
    return F.huber_loss(td_error, torch.zeros_like(td_error), reduction="none", delta=delta)


def dqn_loss(
    q_taken: torch.Tensor,  # [B] Q_online(s, a)
    target: torch.Tensor,  # [B] y, no gradient
    weights: torch.Tensor,  # [B] importance-sampling weights
    huber_delta: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean IS-weighted Huber loss, and the TD errors δ = y − Q(s, a) for new priorities."""
    td = target.detach() - q_taken
    return (weights * huber(td, huber_delta)).mean(), td.detach()
