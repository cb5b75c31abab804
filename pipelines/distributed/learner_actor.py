"""The learner as a Ray actor, for a learner on a GPU that the driver's machine may not have.

``learner.device: cuda`` on Ray (or ``learner.placement: actor``) puts the pure
:class:`~components.rl.dqn.learner.Learner` in an actor that asks for ``learner.num_gpus`` of a
GPU (a fraction shares one GPU between runs). The actor pulls its batches straight from the replay
actor, prefetching the next call's batches while it trains, sends the new priorities back to the
replay, and ``ray.put``s the weights itself when a publish is due: the driver hands that one
reference to every collector, so weights never travel through the driver.

The driver keeps a :class:`RemoteLearner`, which answers what the loop, the evaluator and the
checkpointer ask of a learner (``steps``, ``online``, ``state_dict`` ...). Up to two ``train`` calls
are in flight, so the actor always has its next call queued while the driver polls collectors.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

from components.config import ConfigError
from components.device import to_cpu
from components.replay.batch import SampledBatch
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.cycle import learner_cycle
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import build_q_network, set_flat_weights


def check_gpus(cfg: DQNConfig, have: float | None = None) -> None:
    """Refuse a GPU learner actor, or an inference actor, the cluster (with ``have`` GPUs: default,
    ask Ray) cannot place (they would wait forever)."""
    gpus = cfg.learner_gpus()
    if have is None:
        have = float(ray.cluster_resources().get("GPU", 0.0))
    if cfg.learner_in_actor() and gpus > have:
        raise ConfigError(
            f"learner.device: cuda on Ray puts the learner in an actor that asks for "
            f"learner.num_gpus={gpus:g} GPU, but the Ray cluster has {have:g}; allowed: "
            f"learner.num_gpus <= {have:g} (a cluster with a GPU), or learner.device: cpu or auto"
        )
    total = (gpus if cfg.learner_in_actor() else 0.0) + cfg.inference_gpus()
    if cfg.inference_gpus() > 0 and total > have:
        raise ConfigError(
            f"collectors.inference: gpu asks for collectors.inference_gpus={cfg.inference_gpus():g} GPU "
            f"besides the learner actor's {gpus if cfg.learner_in_actor() else 0:g}, but the Ray cluster "
            f"has {have:g}; allowed: shares that sum to <= {have:g} (e.g. learner.num_gpus: 0.75 and "
            f"collectors.inference_gpus: 0.25 on one GPU), collectors.inference_gpus: 0 (on a CPU), or "
            f"collectors.inference: local"
        )


class PrefetchingReplay:
    """The replay actor as a batch source: while the learner trains on one call's batches, the next
    call's are already being sampled."""

    def __init__(self, replay: Any, batch_size: int) -> None:
        self.replay, self.batch_size = replay, batch_size
        self.prefetch: Any = None

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        if self.prefetch is None:
            self.prefetch = self.replay.sample_many.remote(self.batch_size, count, beta)
        batches: list[SampledBatch] = ray.get(self.prefetch)
        self.prefetch = self.replay.sample_many.remote(self.batch_size, count, beta)
        return batches

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.replay.update_priorities.remote(idx, priorities)


@ray.remote(num_cpus=0)
class LearnerActor:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, replay: Any) -> None:
        torch.manual_seed(cfg.seed)  # the same initial weights as a learner in the driver
        # Its placement (device, threads, TF32) is resolved here, on the GPU Ray gave this actor.
        self.learner = Learner(build_q_network(cfg.network, obs_shape, n_actions), cfg.learner)
        self.batch_size, self.publish_every = cfg.learner.batch_size, cfg.learner.publish_every
        self.source = PrefetchingReplay(replay, self.batch_size)

    def info(self) -> dict[str, Any]:
        return {
            **self.learner.describe(),  # device, cuda_graph, precision, channels_last
            "pid": os.getpid(),
            "gpu_ids": ray.get_gpu_ids(),
            "cuda_name": torch.cuda.get_device_name() if self.learner.placement.cuda else None,
        }

    def set_replay(self, replay: Any) -> None:
        self.source = PrefetchingReplay(replay, self.batch_size)

    def train(self, count: int, beta: float) -> dict[str, Any]:
        """Train on ``count`` batches; returns their metrics, the step count and, when a publish fell
        due, a reference to the new weights (put once per call by this actor)."""
        due: list[bool] = []
        metrics = learner_cycle(
            self.learner, self.source, count, beta, self.publish_every, lambda: due.append(True)
        )
        weights = [ray.put(self.learner.get_weights())] if due else []
        return {"metrics": metrics, "steps": self.learner.steps, "weights": weights}

    def get_weights(self) -> np.ndarray:
        return self.learner.get_weights()

    def state_dict(self) -> dict[str, Any]:
        return to_cpu(self.learner.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> int:
        self.learner.load_state_dict(state)  # onto the actor's device
        return self.learner.steps


class RemoteLearner:
    """The driver's handle on a :class:`LearnerActor`, with the surface the DQN loop drives
    (``pipelines/dqn/state.py: LoopLearner``).

    ``online`` is a CPU mirror of the actor's online network (``mirror``, the driver's own copy of
    the network), refreshed on each access (evaluations and checkpoints, not every step).
    """

    device = torch.device("cpu")  # where the mirror lives: greedy evaluation runs in the driver

    def __init__(
        self,
        cfg: DQNConfig,
        obs_shape: tuple[int, ...],
        n_actions: int,
        wiring: Any,
        mirror: torch.nn.Module | None = None,
    ) -> None:
        self.cfg, self.wiring = cfg, wiring
        self.actor = LearnerActor.options(num_gpus=cfg.learner_gpus()).remote(
            cfg, obs_shape, n_actions, wiring.replay
        )
        self.replay = wiring.replay
        self._mirror = mirror if mirror is not None else build_q_network(cfg.network, obs_shape, n_actions)
        self.steps = 0
        self.stopped = False
        self.in_flight: list[Any] = []
        self.done: list[dict[str, float]] = []  # metrics of calls drained between train calls

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = ray.get(self.actor.info.remote())
        return info

    @property
    def online(self) -> torch.nn.Module:
        """The actor's network as of now (after :meth:`stop`: as of the stop, which refreshed it)."""
        if not self.stopped:
            set_flat_weights(self._mirror, ray.get(self.actor.get_weights.remote()))
        return self._mirror

    def get_weights(self) -> np.ndarray:
        w: np.ndarray = ray.get(self.actor.get_weights.remote())
        return w

    def state_dict(self) -> dict[str, Any]:
        """The actor's state once its queued calls are done, so that it matches ``steps``."""
        self.drain()
        state: dict[str, Any] = ray.get(self.actor.state_dict.remote())
        return state

    def drain(self) -> None:
        """Wait for the queued ``train`` calls; their metrics come with the next ``train``."""
        while self.in_flight:
            self.done.extend(self._collect(self.in_flight.pop(0)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(ray.get(self.actor.load_state_dict.remote(state)))

    def train(self, count: int, beta: float) -> list[dict[str, float]]:
        """Collect a finished ``train`` call, if any, and keep two queued; returns the metrics of the
        batches trained (empty while the actor is busy or the replay refills after a restart)."""
        if not self.wiring.ready_to_sample():
            return []
        if self.replay is not self.wiring.replay:  # the replay actor was replaced
            self.actor.set_replay.remote(self.wiring.replay)
            self.replay, self.in_flight = self.wiring.replay, []
        while len(self.in_flight) < 2:
            self.in_flight.append(self.actor.train.remote(count, beta))
        ready, _ = ray.wait(self.in_flight[:1], timeout=0)
        done, self.done = self.done, []
        if ready:
            done.extend(self._collect(self.in_flight.pop(0)))
        return done

    def _collect(self, ref: Any) -> list[dict[str, float]]:
        try:
            out = ray.get(ref)
        except (RayTaskError, RayActorError) as e:
            # A call that used a replay actor which has died: restart it, unless the driver already did.
            current = self.replay is self.wiring.replay
            if current and self.wiring.replay_alive():
                raise  # not the replay: the learner itself failed
            if current:
                self.wiring.restart_replay(e)
            return []
        self.steps = int(out["steps"])
        for w in out["weights"]:
            self.wiring.publish(w)
        metrics: list[dict[str, float]] = out["metrics"]
        return metrics

    def stop(self) -> None:
        """Kill the actor, keeping its last weights in the mirror (the run's final model)."""
        if self.stopped:
            return
        with contextlib.suppress(Exception):  # already gone: the mirror keeps what it had
            set_flat_weights(self._mirror, ray.get(self.actor.get_weights.remote(), timeout=30))
        self.stopped = True
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actor)
