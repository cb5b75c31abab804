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
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import build_q_network, set_flat_weights


def uses_learner_actor(cfg: DQNConfig) -> bool:
    placement = cfg.learner.placement
    return not cfg.local and (placement == "actor" or (placement == "auto" and cfg.learner.device == "cuda"))


def learner_gpus(cfg: DQNConfig) -> float:
    return cfg.learner.num_gpus if cfg.learner.device == "cuda" else 0.0


def check_gpus(cfg: DQNConfig) -> None:
    """Refuse a GPU learner actor the cluster cannot place (it would wait forever)."""
    gpus, have = learner_gpus(cfg), float(ray.cluster_resources().get("GPU", 0.0))
    if uses_learner_actor(cfg) and gpus > have:
        raise ConfigError(
            f"learner.device: cuda on Ray puts the learner in an actor that asks for "
            f"learner.num_gpus={gpus:g} GPU, but the Ray cluster has {have:g}; allowed: "
            f"learner.num_gpus <= {have:g} (a cluster with a GPU), or learner.device: cpu or auto"
        )


@ray.remote(num_cpus=0)
class LearnerActor:
    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, replay: Any) -> None:
        torch.set_num_threads(cfg.learner.num_threads)
        torch.manual_seed(cfg.seed)  # the same initial weights as a learner in the driver
        self.learner = Learner(build_q_network(cfg.network, obs_shape, n_actions), cfg.learner)
        self.batch_size, self.publish_every = cfg.learner.batch_size, cfg.learner.publish_every
        self.replay: Any = replay
        self.prefetch: Any = None

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.learner.device),
            "pid": os.getpid(),
            "gpu_ids": ray.get_gpu_ids(),
            "cuda_name": torch.cuda.get_device_name() if self.learner.device.type == "cuda" else None,
        }

    def set_replay(self, replay: Any) -> None:
        self.replay, self.prefetch = replay, None

    def train(self, count: int, beta: float) -> dict[str, Any]:
        """Train on ``count`` batches; returns their metrics, the step count and, when a publish fell
        due, a reference to the new weights (put once by this actor)."""
        if self.prefetch is None:
            self.prefetch = self.replay.sample_many.remote(self.batch_size, count, beta)
        batches = ray.get(self.prefetch)
        self.prefetch = self.replay.sample_many.remote(self.batch_size, count, beta)
        metrics, idx, prio, publish = [], [], [], False
        for batch in batches:
            p, m = self.learner.step(batch)
            idx.append(batch.slots)
            prio.append(p)
            metrics.append(m)
            publish |= self.learner.steps % self.publish_every == 0
        if batches:
            self.replay.update_priorities.remote(np.concatenate(idx), np.concatenate(prio))
        weights = [ray.put(self.learner.get_weights())] if publish else []
        return {"metrics": metrics, "steps": self.learner.steps, "weights": weights}

    def get_weights(self) -> np.ndarray:
        return self.learner.get_weights()

    def state_dict(self) -> dict[str, Any]:
        return _to_cpu(self.learner.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> int:
        self.learner.load_state_dict(state)  # onto the actor's device
        return self.learner.steps


def _to_cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_to_cpu(v) for v in x)
    return x


class RemoteLearner:
    """The driver's handle on a :class:`LearnerActor`, with the surface of a ``Learner`` the loop uses.

    ``online`` is a CPU mirror of the actor's online network, refreshed on each access (evaluations
    and checkpoints, not every step); ``train_batches`` replaces the loop's own sample/step cycle.
    """

    device = torch.device("cpu")  # where the mirror lives: greedy evaluation runs in the driver

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, wiring: Any) -> None:
        check_gpus(cfg)
        self.cfg, self.wiring = cfg, wiring
        self.actor = LearnerActor.options(num_gpus=learner_gpus(cfg)).remote(
            cfg, obs_shape, n_actions, wiring.replay
        )
        self.replay = wiring.replay
        self._mirror = build_q_network(cfg.network, obs_shape, n_actions)
        self.steps = 0
        self.in_flight: list[Any] = []
        self.done: list[dict[str, float]] = []  # metrics of calls drained between train_batches

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = ray.get(self.actor.info.remote())
        return info

    @property
    def online(self) -> torch.nn.Module:
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
        """Wait for the queued ``train`` calls; their metrics come with the next ``train_batches``."""
        while self.in_flight:
            self.done.extend(self._collect(self.in_flight.pop(0)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(ray.get(self.actor.load_state_dict.remote(state)))

    def train_batches(self, count: int, beta: float) -> list[dict[str, float]]:
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
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actor)
