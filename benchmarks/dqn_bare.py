"""The references adl's DQN learner is measured against: a bare update written out by hand (same network,
Double-DQN n-step target, IS-weighted Huber loss, global-norm clip, fused Adam), run eagerly on batches
already on the device, and the same update replayed as a CUDA graph (PyTorch's whole-network recipe:
warm-up on a side stream, grads set to None, capture, copy each batch into the static inputs, replay).

It shares nothing with ``components/rl/dqn/`` but the network classes, so a slip in adl's update cannot
hide in its reference. Used by ``bench_dqn_gpu.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, ...]  # obs, action, reward, done, n, next_obs, weight (all on the device)


class BareUpdate:
    def __init__(self, net: nn.Module, device: torch.device, lr: float, capturable: bool = False) -> None:
        self.online = net.to(device)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.params = list(self.online.parameters())
        fused = True if device.type == "cuda" else None
        self.opt = torch.optim.Adam(self.params, lr=lr, fused=fused, capturable=capturable)
        self.gamma, self.clip = 0.99, 10.0

    def __call__(self, obs, action, reward, done, n, next_obs, weight) -> torch.Tensor:  # noqa: ANN001
        b = obs.shape[0]
        q_all = self.online(torch.cat([obs, next_obs]))
        q = q_all[:b].gather(1, action.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            best = q_all[b:].argmax(1, keepdim=True)
            boot = self.target(next_obs).gather(1, best).squeeze(1)
            y = reward + torch.pow(torch.full_like(reward, self.gamma), n) * (1.0 - done) * boot
        loss = (weight * F.huber_loss(q, y, reduction="none", delta=1.0)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.opt.step()
        return (y - q).detach().abs()  # |δ|, left on the device as adl's are until its read-back


def device_batches(host: list[tuple[np.ndarray, ...]], device: torch.device) -> list[Batch]:
    """Host batches (obs, action, reward, done, n, next_obs, weight) as device tensors, copied once."""
    out = []
    for obs, action, reward, done, n, nxt, weight in host:
        out.append(
            (
                torch.as_tensor(obs).to(device),
                torch.as_tensor(action).long().to(device),
                torch.as_tensor(reward).float().to(device),
                torch.as_tensor(done).float().to(device),
                torch.as_tensor(n).float().to(device),
                torch.as_tensor(nxt).to(device),
                torch.as_tensor(weight).float().to(device),
            )
        )
    return out


def eager_runner(update: BareUpdate, batches: list[Batch]) -> Callable[[int], int]:
    def run(n: int) -> int:
        for i in range(n):
            update(*batches[i % len(batches)])
        return n

    return run


def graphed_runner(update: BareUpdate, batches: list[Batch], warmup: int = 3) -> Callable[[int], int]:
    """Capture ``update`` once on static copies of the first batch; each step copies a batch in and
    replays. ``update`` must have been built with ``capturable=True``."""
    static = [t.clone() for t in batches[0]]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            update(*static)
    torch.cuda.current_stream().wait_stream(side)
    update.opt.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        update(*static)

    def run(n: int) -> int:
        for i in range(n):
            for dst, src in zip(static, batches[i % len(batches)]):
                dst.copy_(src)
            graph.replay()
        return n

    return run
