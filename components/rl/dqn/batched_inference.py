"""One Q-network answering every collector's observations in one forward pass (SEED RL style).

Nature-CNN inference on one CPU thread handles ~2–4k observations/s, as costly as the Atari emulator
itself, so CPU collectors top out near half their env rate; on a GPU the same network answers ~229k/s
at batch 256 including the copies (DESIGN.md). With ``collectors.inference: gpu`` the collectors send
their observations to one inference actor instead of running Q themselves; this class is what that
actor computes with: the requests concatenated, one no-grad forward on its device, the Q-values split
back per request. It gets the learner's weights as collectors do (one flat array per publish), with
batch norm folded into the convolutions, as in a collector's own inference copy.

(Espeholt et al. 2020, "SEED RL": central inference on the learner's accelerator, actors only step
environments. Here the inference actor is separate from the learner so either can move.)
"""

from __future__ import annotations

import numpy as np
import torch

from components.device import prefers_channels_last
from components.nets.qnets import inference_copy
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import build_q_network, set_flat_weights


class BatchedQ:
    """Q-values for many requests at once, on ``device``, from the weights last given to it."""

    def __init__(
        self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, device: torch.device
    ) -> None:
        self.device = device
        self.batch_norm = cfg.network.batch_norm
        self.net = build_q_network(cfg.network, obs_shape, n_actions)  # CPU copy the weights land in
        self.channels_last = prefers_channels_last(device) and len(obs_shape) == 3
        self.policy = self._fold()
        self.requests = self.batches = 0

    def _fold(self) -> torch.nn.Module:
        policy = inference_copy(self.net).to(self.device)
        if self.channels_last:  # 4-d (conv) weights only; torch's stubs omit this keyword
            policy.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return policy

    def set_weights(self, flat: np.ndarray) -> None:
        set_flat_weights(self.net, flat)
        if self.batch_norm:
            self.policy = self._fold()  # re-fold BN with the new statistics
        else:
            set_flat_weights(self.policy, flat)

    @torch.no_grad()
    def __call__(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        """Q-values [n_i, A] for each request of n_i observations, computed as one batch."""
        sizes = [len(r) for r in requests]
        obs = torch.from_numpy(np.concatenate(requests)).to(self.device, non_blocking=True)
        if self.channels_last:
            obs = obs.contiguous(memory_format=torch.channels_last)
        q = self.policy(obs).float().cpu().numpy()
        self.requests += len(requests)
        self.batches += 1
        return np.split(q, np.cumsum(sizes)[:-1])
