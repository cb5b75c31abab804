"""The collectors' shared inference actor (``collectors.inference: gpu``): SEED RL style batching.

Each collector sends the observations of its vector env (one request per vector step, plus one per
call for the initial priorities) and waits for the Q-values. The actor is an asyncio actor: requests
queue until every collector has one waiting, or ``collectors.inference_wait_ms`` has passed since the
first, and are then answered with one forward pass of
:class:`~components.rl.dqn.batched_inference.BatchedQ` on the actor's device — a GPU share
(``collectors.inference_gpus``), or the CPU with a share of 0 (tests). Weights arrive like a
collector's: one flat array per publish, by object-store reference.

An inference actor that dies is not replaced: every collector's next step fails with it, and the run
stops with that error (collectors are replaced on faults; this actor is one process on the GPU node,
like the learner actor).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import ray
import torch

from components.rl.dqn.batched_inference import BatchedQ
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import get_flat_weights


@ray.remote(num_cpus=0)
class InferenceActor:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> None:
        torch.set_num_threads(1)
        device = torch.device("cuda" if cfg.inference_gpus() > 0 else "cpu")
        self.q = BatchedQ(cfg, obs_shape, n_actions, device)
        self.expect = cfg.collectors.num_collectors  # answer at once when this many requests wait
        self.wait_s = cfg.collectors.inference_wait_ms / 1000.0
        self.pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self.timer: asyncio.TimerHandle | None = None

    async def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values [N, A] for ``obs`` [N, ...], answered in a batch with other collectors' requests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.pending.append((obs, future))
        if len(self.pending) >= self.expect:
            self._answer()
        elif self.timer is None:
            self.timer = loop.call_later(self.wait_s, self._answer)
        return await future

    def _answer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            answers = self.q([obs for obs, _ in pending])
        except Exception as e:  # every waiting collector sees the error
            for _, future in pending:
                future.set_exception(e)
            return
        for (_, future), q in zip(pending, answers):
            future.set_result(q)

    async def set_weights(self, flat: np.ndarray) -> None:
        self.q.set_weights(flat)

    async def weights(self) -> np.ndarray:
        """The weights it answers with (as published: one flat array)."""
        return get_flat_weights(self.q.net)

    async def stats(self) -> dict[str, Any]:
        """Requests answered, forward passes run, and the device: requests/batches is the batching."""
        return {"requests": self.q.requests, "batches": self.q.batches, "device": str(self.q.device)}
