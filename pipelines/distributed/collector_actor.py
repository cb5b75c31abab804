"""A collector as a Ray actor: the pure :class:`~components.rl.dqn.collector.Collector`, pushing its
batches straight into the replay actor with at most ``max_in_flight`` adds outstanding, so it goes on
stepping while its last batch travels. With ``collectors.inference: gpu`` it asks the shared inference
actor (``inference_actor.py``) for its Q-values instead of running the network itself."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import ray

from components.rl.dqn.collector import Collector, EpisodeStats
from components.rl.dqn.config import DQNConfig


def _remote_q(inference: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Q-values from the inference actor, waited for (the collector acts on them at once)."""

    def q_fn(obs: np.ndarray) -> np.ndarray:
        q: np.ndarray = ray.get(inference.q_values.remote(obs))
        return q

    return q_fn


@ray.remote(num_cpus=1)
class CollectorActor:
    def __init__(
        self,
        cfg: DQNConfig,
        index: int,
        obs_shape: tuple[int, ...],
        n_actions: int,
        replay: Any,
        generation: int = 0,
        env_steps: int = 0,
        inference: Any = None,
    ) -> None:
        if cfg.network.kind != "mlp" and inference is None:  # a torch CNN: one thread per actor's CPU
            import torch  # torch: a frame collector's CNN only; an MLP collector acts with numpy

            torch.set_num_threads(1)
        q_fn = _remote_q(inference) if inference is not None else None
        self.collector = Collector(cfg, index, obs_shape, n_actions, generation, q_fn=q_fn)
        self.replay = replay
        self.max_in_flight = cfg.collectors.max_in_flight
        self.in_flight: list[Any] = []
        self.collector.env_steps = env_steps  # where a replacement resumes the ε schedule

    def pid(self) -> int:
        return os.getpid()

    def set_replay(self, replay: Any) -> None:
        """Push to a restarted replay actor; adds in flight to the dead one are dropped."""
        self.replay, self.in_flight = replay, []

    def set_weights(self, flat: np.ndarray) -> None:
        self.collector.set_weights(flat)

    def weights(self) -> np.ndarray:
        return self.collector.get_weights()

    def set_env_steps(self, env_steps: int) -> None:
        self.collector.env_steps = env_steps

    def run(self, num_steps: int) -> EpisodeStats:
        batch, stats = self.collector.run(num_steps)
        if len(self.in_flight) >= self.max_in_flight:
            _, self.in_flight = ray.wait(
                self.in_flight, num_returns=len(self.in_flight) - self.max_in_flight + 1
            )
        self.in_flight.append(self.replay.add.remote(batch))
        return stats

    def flush(self) -> int:
        """Wait for every outstanding add; returns how many there were."""
        n = len(ray.get(self.in_flight))
        self.in_flight = []
        return n
