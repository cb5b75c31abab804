"""The learner: sample → Double-DQN loss → optimizer step → new priorities; owns target and optimizer."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from components.device import resolve_device
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.networks import get_flat_weights
from components.rl.dqn.target_network import TargetPair
from components.rl.dqn.targets import dqn_loss, td_target

# Batches from Ray's object store are read-only numpy arrays; torch warns (once) when it wraps one,
# and the learner only reads them. A filter for that message, set once: a catch_warnings around
# every batch array cost ~4% of an update.
warnings.filterwarnings(
    "ignore",
    message="The given NumPy array is not writable",
    category=UserWarning,
    module=r"components\.rl\.dqn\.learner",
)


class Learner:
    def __init__(self, net: nn.Module, cfg: LearnerConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device, "learner.device")
        self.pair = TargetPair(net.to(self.device))
        self.params = list(self.pair.online.parameters())
        # One fused kernel per step instead of ~10 small ops per parameter (5x faster for small nets).
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, fused=True)
        self.steps = 0

    @property
    def online(self) -> nn.Module:
        return self.pair.online

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x).to(self.device, non_blocking=True)

    def step(self, batch: SampledBatch) -> tuple[np.ndarray, dict[str, float]]:
        """One update; returns |δ| for the replay's priorities and the step's metrics."""
        obs, next_obs = self._tensor(batch.obs), self._tensor(batch.next_obs)
        action = self._tensor(batch.action).long()
        b = obs.shape[0]
        # One forward of the online net over s and s' together (s' picks the Double-DQN action).
        q_all = self.pair.online(torch.cat([obs, next_obs]))
        q, next_q_online = q_all[:b], q_all[b:].detach()
        with torch.no_grad():
            next_q_target = self.pair.target(next_obs)
            target = td_target(
                self._tensor(batch.reward).float(),
                self._tensor(batch.done).float(),
                self._tensor(batch.n).float(),
                next_q_online,
                next_q_target,
                self.cfg.gamma,
                self.cfg.double,
            )
        q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
        loss, td = dqn_loss(q_taken, target, self._tensor(batch.weight).float(), self.cfg.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
            if self.cfg.grad_clip > 0
            else torch.tensor(0.0, device=self.device)
        )
        self.optimizer.step()
        self.steps += 1
        if self.cfg.target_update == "soft":
            self.pair.sync(self.cfg.tau)
        elif self.steps % self.cfg.target_every == 0:
            self.pair.sync(1.0)
        abs_td = td.abs().cpu().numpy()
        return abs_td, {
            "loss": float(loss.detach()),
            "mean_q": float(q_taken.detach().mean()),
            "mean_abs_td": float(abs_td.mean()),
            "grad_norm": float(grad_norm),
        }

    def get_weights(self) -> np.ndarray:
        return get_flat_weights(self.pair.online)

    def state_dict(self) -> dict[str, Any]:
        return {
            "online": self.pair.online.state_dict(),
            "target": self.pair.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pair.online.load_state_dict(state["online"])
        self.pair.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
