"""The Ray wiring of DQN: collector actors and the replay actor, as the loop drives them.

Collectors push their batches straight into the replay actor (Ape-X's shared buffer), keeping at
most ``max_in_flight`` adds outstanding so they go on stepping while the last batch travels. The
replay actor lives on the driver's node (its snapshots go to the driver's checkpoint folder). The
learner (in the driver) prefetches its next ``batches_per_call`` batches while it trains on the
current ones, and broadcasts weights with one ``ray.put`` per publish: every collector reads the
same object-store copy. With ``collectors.inference: gpu`` the collectors act through one shared
inference actor (``inference_actor.py``), and the weights go to it instead.

Faults: a collector that dies (``ray.kill``, a killed process, a crashed env, its host gone) shows
up as an ``ActorDiedError`` on its pending ``run()``; the wiring starts a replacement with the same
index, the latest weights and the dead one's ε-schedule position, and counts the restart. One that
cannot be reached (``ActorUnavailableError``: its host cut off, or dying) is asked again a second
later, not replaced: it answers when the link is back, or Ray declares it dead. A replay actor that
dies is replaced from the last snapshot (the replay file of the last checkpoint); the transitions
added since then are lost, and the log says how many. Both are driver-side replacements rather than
Ray's ``max_restarts``, because a restarted actor must be told its weights, position and snapshot.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from components.replay.batch import SampledBatch
from components.replay.rate_limiter import SamplesPerInsert
from components.replay.snapshot import Compression
from components.rl.dqn.collector import EpisodeStats
from components.rl.dqn.config import DQNConfig
from pipelines.distributed.collector_actor import CollectorActor
from pipelines.distributed.inference_actor import InferenceActor
from pipelines.distributed.replay_actor import ReplayActor


def _log(msg: str) -> None:
    print(f"adl: {msg}", file=sys.stderr, flush=True)


def _replay_actor(cfg: DQNConfig, obs_shape: tuple[int, ...], dtype: str) -> Any:
    """The replay actor, on the driver's own node: it writes its snapshot into the run's checkpoint
    folder, which is on the driver's disk; on a cluster of several machines, anywhere else it would
    write to another host's disk, and the checkpoint would not be whole."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ReplayActor.options(scheduling_strategy=here).remote(cfg, obs_shape, dtype)


class RayWiring:
    """The counterpart of ``LocalWiring`` (``pipelines/dqn/local_wiring.py``) with every part an actor."""

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> None:
        self.cfg = cfg
        self.spaces = (obs_shape, np.dtype(obs_dtype).str, n_actions)
        self.replay = _replay_actor(cfg, obs_shape, np.dtype(obs_dtype).str)
        # collectors.inference: gpu — one actor answers every collector's Q-values (inference_actor.py).
        self.inference = (
            InferenceActor.options(num_gpus=cfg.inference_gpus()).remote(cfg, obs_shape, n_actions)
            if cfg.collectors.inference == "gpu"
            else None
        )
        self.collectors = [
            CollectorActor.remote(cfg, i, obs_shape, n_actions, self.replay, inference=self.inference)
            for i in range(cfg.collectors.num_collectors)
        ]
        self.generation = [0] * len(self.collectors)
        self.env_steps = [0] * len(self.collectors)  # per collector, from its reported stats
        self.weights_ref: Any = None
        self.collector_restarts = self.replay_restarts = self.lost_transitions = 0
        self.inserted = 0  # transitions the collectors reported (sent to the replay)
        self.snapshot: tuple[Path, int] | None = None  # last replay snapshot and its insert count
        self.refilling = False  # after a replay restart: no sampling until min_size again
        self.running: dict[Any, int] = {}  # ObjectRef of a run() call -> collector index
        self.idle_collectors = set(range(len(self.collectors)))
        self.held_until: dict[int, float] = {}  # collectors not answering: asked again after this time
        self.unreachable = 0  # calls that found a collector unreachable
        self.prefetch: Any = None
        self.per_call = cfg.collectors.steps_per_call * cfg.collectors.envs_per_collector
        self._size = 0

    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]:
        out = []
        if self.running:
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for ref in ready:
                i = self.running.pop(ref)
                self.idle_collectors.add(i)
                try:
                    stats = ray.get(ref)
                except ActorUnavailableError:  # its node is unreachable for now (a cut link, a dying host)
                    self._hold(i)
                    continue
                except RayActorError as e:
                    self._replace_collector(i, e)
                    continue
                if self.held_until.pop(i, None) is not None:
                    _log(f"collector {i} answers again")
                self.env_steps[i] += stats.env_steps
                self.inserted += stats.transitions
                out.append(stats)
        now = time.monotonic()
        for i in sorted(self.idle_collectors):
            if self.held_until.get(i, 0.0) > now:
                continue
            if not limiter.can_insert(self.per_call * (len(self.running) + 1)):
                break
            self.running[self.collectors[i].run.remote(self.cfg.collectors.steps_per_call)] = i
            self.idle_collectors.discard(i)
        return out

    def _hold(self, i: int) -> None:
        """Collector ``i`` could not be reached: ask it again in a second rather than replace it. If its
        node is only cut off, it answers once the link is back (nothing restarted, nothing lost but the
        steps of the call); if the node is gone, Ray declares the actor dead and the next call's
        ``ActorDiedError`` replaces it (one restart per death, not one per unanswered call)."""
        if self.held_until.get(i, 0.0) == 0.0:
            _log(f"collector {i} is unreachable (its node may be cut off or dying); asking again")
        self.unreachable += 1
        self.held_until[i] = time.monotonic() + 1.0

    def _replace_collector(self, i: int, err: Exception) -> None:
        """Start collector ``i`` again with the latest weights and its ε-schedule position."""
        self.collector_restarts += 1
        self.generation[i] += 1
        self.held_until.pop(i, None)
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.collectors[i])
        obs_shape, _, n_actions = self.spaces
        c = CollectorActor.remote(
            self.cfg,
            i,
            obs_shape,
            n_actions,
            self.replay,
            self.generation[i],
            self.env_steps[i],
            self.inference,
        )
        if self.weights_ref is not None:
            c.set_weights.remote(self.weights_ref)
        self.collectors[i] = c
        _log(
            f"collector {i} died ({type(err).__name__}); started a replacement with the current weights "
            f"(restart {self.collector_restarts})"
        )

    def restart_replay(self, err: Exception) -> None:
        """Replace the replay actor from the last snapshot; say how many transitions were lost."""
        self.replay_restarts += 1
        with contextlib.suppress(Exception):
            ray.kill(self.replay)
        obs_shape, dtype, _ = self.spaces
        self.replay = _replay_actor(self.cfg, obs_shape, dtype)
        inserts_then, since = 0, "empty (no snapshot yet)"
        if self.snapshot is not None:
            path, inserts_then = self.snapshot
            kept = int(ray.get(self.replay.restore.remote(str(path)))["size"])
            since = f"the snapshot {path} ({kept} transitions)"
        lost = max(0, self.inserted - inserts_then)
        self.inserted = inserts_then  # from here on it counts the restored replay's inserts
        for c in self.collectors:
            c.set_replay.remote(self.replay)
        self.prefetch, self.refilling = None, True
        self.lost_transitions += lost
        _log(
            f"replay actor died ({type(err).__name__}); restarted from {since}; lost {lost} transitions "
            f"added since (restart {self.replay_restarts})"
        )

    def ready_to_sample(self) -> bool:
        """False while a restarted replay refills to ``min_size``."""
        if self.refilling:
            if self.replay_size() < self.cfg.replay.min_size:
                return False
            self.refilling = False
        return True

    def replay_alive(self) -> bool:
        try:
            ray.get(self.replay.size.remote(), timeout=30)
        except RayActorError:
            return False
        return True

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        if not self.ready_to_sample():
            return []
        try:
            if self.prefetch is None:
                self.prefetch = self.replay.sample_many.remote(self.cfg.learner.batch_size, count, beta)
            batches = ray.get(self.prefetch)
        except RayActorError as e:
            self.restart_replay(e)
            return []
        self.prefetch = self.replay.sample_many.remote(self.cfg.learner.batch_size, count, beta)
        return batches  # type: ignore[no-any-return]

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.replay.update_priorities.remote(idx, priorities)

    def publish(self, weights: np.ndarray | ray.ObjectRef) -> None:
        # One copy in the object store (put here, or by a learner actor), read zero-copy by every collector.
        ref = weights if isinstance(weights, ray.ObjectRef) else ray.put(weights)
        self.weights_ref = ref
        if self.inference is not None:  # the collectors act through it and need no weights
            self.inference.set_weights.remote(ref)
            return
        for c in self.collectors:
            c.set_weights.remote(ref)

    def idle(self) -> None:
        if self.running:
            ray.wait(list(self.running), num_returns=1, timeout=0.005)

    def replay_size(self) -> int:
        try:
            self._size = int(ray.get(self.replay.size.remote()))
        except RayActorError as e:
            self.restart_replay(e)
            self._size = int(ray.get(self.replay.size.remote()))
        return self._size

    def stop(self) -> None:
        for a in [*self.collectors, self.replay, *([self.inference] if self.inference is not None else [])]:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(a)

    def save_replay(self, path: Path, compression: Compression) -> dict[str, Any]:
        """The replay actor writes its own snapshot (no copy of the replay through the driver)."""
        try:
            meta: dict[str, Any] = ray.get(self.replay.snapshot.remote(str(path), compression))
        except RayActorError as e:
            self.restart_replay(e)
            meta = ray.get(self.replay.snapshot.remote(str(path), compression))
        return meta

    def load_replay(self, path: Path) -> dict[str, Any]:
        meta: dict[str, Any] = ray.get(self.replay.restore.remote(str(path)))
        self.inserted = int(meta["inserts"])
        return meta

    def set_snapshot(self, path: Path, inserts: int) -> None:
        """Where the replay would restart from after a fault (the last checkpoint's replay file)."""
        self.snapshot = (path, inserts)

    def collector_env_steps(self) -> list[int]:
        return list(self.env_steps)

    def restore_collectors(self, env_steps: list[int]) -> None:
        self.env_steps = list(env_steps) + [0] * (len(self.collectors) - len(env_steps))
        for c, n in zip(self.collectors, self.env_steps):
            c.set_env_steps.remote(n)

    def fault_counts(self) -> dict[str, float]:
        return {
            "collector_restarts": float(self.collector_restarts),
            "replay_restarts": float(self.replay_restarts),
            "replay_lost_transitions": float(self.lost_transitions),
        }

    def restore_fault_counts(self, counts: dict[str, float]) -> None:
        """The counts of a run's earlier sessions (from its checkpoint): they go on from there."""
        self.collector_restarts = int(counts.get("collector_restarts", 0))
        self.replay_restarts = int(counts.get("replay_restarts", 0))
        self.lost_transitions = int(counts.get("replay_lost_transitions", 0))
