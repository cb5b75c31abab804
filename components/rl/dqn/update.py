"""One Double-DQN update as tensor operations only: the body a learner runs eagerly or as a CUDA graph.

Forward (s and s' in one pass) → Double-DQN n-step target → IS-weighted Huber loss → backward → global
gradient clip → Adam → the Polyak step of a soft target. It never reads a value back to the host (no
``float()``, ``.item()``, ``.cpu()``, no Python branch on a tensor), so the same code runs eagerly or
captured once by :class:`~components.rl.dqn.graphed_update.GraphedUpdate`, and its result stays on the
device until the learner cycle reads all of a call's results back at once.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from components.device import autocast
from components.replay.batch import SampledBatch
from components.rl.dqn.config import LearnerConfig
from components.rl.dqn.target_network import TargetPair
from components.rl.dqn.targets import dqn_loss, td_target

# Batches from Ray's object store are read-only numpy arrays; torch warns (once) when it wraps one,
# and the update only reads them. A filter for that message, set once: a catch_warnings around every
# batch array cost ~4% of an update.
warnings.filterwarnings(
    "ignore",
    message="The given NumPy array is not writable",
    category=UserWarning,
    module=r"components\.rl\.dqn\.update",
)

# What an update reports besides |δ|, in the order it packs them after the B priorities.
METRICS = ("loss", "mean_q", "mean_abs_td", "grad_norm")
# The rows of UpdateInputs.scalars.
SCALARS = ("action", "reward", "done", "n", "weight")


class UpdateInputs(NamedTuple):
    """A batch as the update reads it: two tensors, so that a GPU learner copies two buffers per update.

    The CPU learner builds them over the batch's own arrays (:func:`host_inputs`); a CUDA learner gets
    them from :class:`~components.rl.dqn.staging.BatchStager`, copied on a side stream, with the two
    events that order that copy against the update.
    """

    obs_pair: torch.Tensor  # [2B, *obs_shape]: the B observations s, then their B next observations s'
    scalars: torch.Tensor  # [5, B] float32, rows SCALARS: action, n-step return, done, n, IS weight
    ready: Any = None  # CUDA event: the copy to the device has landed (wait for it before reading)
    used: Any = None  # CUDA event: record it once the update has read the tensors (frees the slot)


def pack_scalars(batch: SampledBatch, out: np.ndarray | None = None) -> np.ndarray:
    """[5, B] float32 rows action, reward, done, n, weight; exact for actions and n below 2^24."""
    out = np.empty((len(SCALARS), len(batch.action)), np.float32) if out is None else out
    out[0], out[1], out[2], out[3], out[4] = batch.action, batch.reward, batch.done, batch.n, batch.weight
    return out


def host_inputs(batch: SampledBatch) -> UpdateInputs:
    """A CPU learner's inputs: tensors over the batch's arrays (s and s' concatenated, as one forward)."""
    cpu = torch.device("cpu")  # the batch's own memory, whatever torch's default device is
    obs, next_obs = torch.as_tensor(batch.obs, device=cpu), torch.as_tensor(batch.next_obs, device=cpu)
    return UpdateInputs(torch.cat([obs, next_obs]), torch.from_numpy(pack_scalars(batch)))


class DQNUpdate:
    """The update of one batch, called with :class:`UpdateInputs`; returns [B + 4] on the device: |δ|
    for the B transitions (the replay's new priorities), then :data:`METRICS`.

    ``channels_last`` feeds a CNN NHWC frames (its weights must be channels-last too); ``bf16`` runs the
    two forward passes under bf16 autocast, without autocast's weight cache (CUDA graphs need that off,
    and each weight is cast once per update anyway), while the target and the loss stay in fp32. The
    Polyak step of a soft target is part of the update (the same op every step: inside a graph); the
    hard copy every K steps is the learner's, outside, because it depends on the step count.
    """

    def __init__(
        self,
        pair: TargetPair,
        optimizer: torch.optim.Optimizer,
        cfg: LearnerConfig,
        channels_last: bool = False,
        bf16: bool = False,
    ) -> None:
        self.pair, self.optimizer, self.cfg = pair, optimizer, cfg
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.channels_last, self.bf16 = channels_last, bf16
        self.device = self.params[0].device
        # On the CPU (compute-bound, no launch overhead to save) the online net runs s and s' in two
        # passes; on CUDA one pass of 2B rows (half the launches). Batch norm keeps the one pass: its
        # batch statistics are those of s and s' together.
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in pair.online.modules())
        self.split = self.device.type == "cpu" and not has_bn

    def _forward(self, net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, "bf16" if self.bf16 else "fp32", cache=False):
            q: torch.Tensor = net(obs)
        return q.float()  # a no-op in fp32

    def __call__(self, x: UpdateInputs) -> torch.Tensor:
        cfg, pair = self.cfg, self.pair
        s = x.scalars
        action, reward, done, n, weight = s[0].long(), s[1], s[2], s[3], s[4]
        obs_pair = x.obs_pair
        if self.channels_last:
            obs_pair = obs_pair.contiguous(memory_format=torch.channels_last)
        b = obs_pair.shape[0] // 2
        if self.split:
            # s with gradients, s' without: backward then runs over B rows, not 2B of which half carry
            # zero gradient (1.6-1.7x faster per update for MinAtar's CNN on one CPU thread).
            q = self._forward(pair.online, obs_pair[:b])
            with torch.no_grad():
                next_q_target = self._forward(pair.target, obs_pair[b:])
                next_q_online = self._forward(pair.online, obs_pair[b:]) if cfg.double else next_q_target
        else:
            # One forward of the online net over s and s' together (s' picks the Double-DQN action).
            q_all = self._forward(pair.online, obs_pair)
            q, next_q_online = q_all[:b], q_all[b:].detach()
            with torch.no_grad():
                next_q_target = self._forward(pair.target, obs_pair[b:])
        with torch.no_grad():
            target = td_target(reward, done, n, next_q_online, next_q_target, cfg.gamma, cfg.double)
        q_taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
        loss, td = dqn_loss(q_taken, target, weight, cfg.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
            if cfg.grad_clip > 0
            else torch.zeros((), device=self.device)  # a fill kernel: no host copy, capturable
        )
        self.optimizer.step()
        if cfg.target_update == "soft":
            pair.sync(cfg.tau)
        abs_td = td.abs()
        metrics = torch.stack([loss.detach(), q_taken.detach().mean(), abs_td.mean(), grad_norm.float()])
        return torch.cat([abs_td, metrics])


def unpack(host: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Split the concatenated results of updates of ``sizes`` transitions each: (|δ| in order, metrics)."""
    prio, metrics, at = [], [], 0
    k = len(METRICS)
    for b in sizes:
        prio.append(host[at : at + b])
        metrics.append({name: float(v) for name, v in zip(METRICS, host[at + b : at + b + k])})
        at += b + k
    return (np.concatenate(prio) if prio else np.zeros(0, np.float32)), metrics
