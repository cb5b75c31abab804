"""The frame collector's own Q-network: the torch CNN it learns nothing with, only acts on, with the
learner's weights loaded into it and its Conv→BatchNorm pairs folded for inference.

Kept apart from ``collector.py`` so that an MLP collector (numpy Q-values, ``numpy_q.py``) never
imports torch: a CartPole collector actor starts ~2 s sooner and without torch's memory.
"""

from __future__ import annotations

import numpy as np
import torch

from components.nets.qnets import inference_copy
from components.rl.dqn.config import NetworkConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights, set_flat_weights


class TorchPolicy:
    """Q-values [N, A] for a batch of observations, on the CPU, without gradients."""

    def __init__(self, cfg: NetworkConfig, obs_shape: tuple[int, ...], n_actions: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.batch_norm = cfg.batch_norm
        self.net = build_q_network(cfg, obs_shape, n_actions)
        self.policy = inference_copy(self.net)

    def set_weights(self, flat: np.ndarray) -> None:
        set_flat_weights(self.net, flat)
        if self.batch_norm:
            self.policy = inference_copy(self.net)  # re-fold BN with the new statistics
        else:
            set_flat_weights(self.policy, flat)

    def get_weights(self) -> np.ndarray:
        """The flat weights, as ``networks.get_flat_weights`` lays them out."""
        return get_flat_weights(self.net)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.policy(torch.as_tensor(obs)).numpy()  # type: ignore[no-any-return]
