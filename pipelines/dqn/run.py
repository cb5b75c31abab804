"""One DQN training, built from its config: spaces checked, the network built once, the learner and
the wiring (local or Ray) put together, the loop run with checkpoints, everything stopped at the end.

``pipelines/dqn/train.py`` (``adl train dqn``) opens the MLflow run around :func:`run_dqn`; tests and
benchmarks call it directly with any tracker.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.config import ConfigError
from components.device import Placement, set_threads
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.cycle import InProcessLearner
from components.rl.dqn.env_factory import check_spaces
from components.rl.dqn.learner import Learner, learner_placement
from components.rl.dqn.networks import build_q_network
from pipelines.dqn.checkpoint import Checkpointer, restore
from pipelines.dqn.loop import train_loop
from pipelines.dqn.state import LoopControl, LoopLearner, LoopResult, LoopState, Wiring
from pipelines.stop_signals import StopSignals
from pipelines.tracking import Tracker


@dataclass(frozen=True)
class DQNSetup:
    """What a run is built from, worked out once per process: the env's spaces, checked against the
    network kind, and this process's copy of the Q-network (the learner's, or the mirror of a learner
    actor's), initialised from ``seed``. A resume verifies its checkpoint against this very network.
    ``placement`` is where a learner in this process runs (None: it runs in an actor, which resolves
    its own on the GPU Ray gives it)."""

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    n_actions: int
    net: nn.Module
    placement: Placement | None = None

    @classmethod
    def from_config(cls, cfg: DQNConfig) -> DQNSetup:
        obs_shape, obs_dtype, n_actions = check_spaces(cfg)  # bad env ids and spaces: exit 2, now
        # A GPU torch cannot see, or a GPU-only option on a CPU learner: exit 2, now.
        placement = None if cfg.learner_in_actor() else learner_placement(cfg.learner)
        torch.manual_seed(cfg.seed)
        net = build_q_network(cfg.network, obs_shape, n_actions)
        return cls(obs_shape, obs_dtype, n_actions, net, placement)

    @property
    def spaces(self) -> tuple[tuple[int, ...], str, int]:
        return self.obs_shape, str(self.obs_dtype), self.n_actions


def prestart_ray(cfg: DQNConfig) -> None:
    """Start a local Ray in a thread while the caller opens its MLflow run; ``build_wiring`` waits.

    A join (``address``, ``$RAY_ADDRESS``) is quick and is left to ``build_wiring``."""
    if not cfg.local:
        from pipelines.distributed.ray_runtime import start_ray_in_background

        start_ray_in_background(cfg.address, cfg.num_cpus)


def check_resources(cfg: DQNConfig) -> None:
    """Refuse, before a run is opened, collectors or a GPU learner the Ray it will run on cannot place.

    A local Ray has ``num_cpus`` (default: this host's) CPUs and this host's GPUs, known without
    starting it; a cluster is joined now (well under a second) and asked. ``build_wiring`` checks
    again once Ray is up."""
    if cfg.local:
        return
    from pipelines.distributed.learner_actor import check_gpus
    from pipelines.distributed.ray_runtime import joins_cluster

    if joins_cluster(cfg.address):
        from pipelines.distributed.ray_runtime import cluster_cpus, init_ray

        init_ray(address=cfg.address)
        check_gpus(cfg)
        _check_cpus(cfg, cluster_cpus())
        return
    _check_cpus(cfg, float(cfg.num_cpus or os.cpu_count() or 1))
    check_gpus(cfg, have=float(torch.cuda.device_count()))  # what a local Ray will detect


def check_memory(cfg: DQNConfig, setup: DQNSetup, total_bytes: int | None = None) -> None:
    """Refuse, before a run is opened, a replay that cannot fit in this host's memory when full (it
    lives here, on the driver's node): numpy reserves it lazily, so it would fail, or be killed, hours
    in. ``total_bytes`` defaults to this host's memory."""
    import psutil

    from components.replay.factory import replay_bytes

    need = replay_bytes(cfg.replay, setup.obs_shape, setup.obs_dtype, cfg.atari.enabled)
    total = int(total_bytes or psutil.virtual_memory().total)
    if need > 0.9 * total:
        per = need / cfg.replay.capacity
        fits = int(0.9 * total / per)
        raise ConfigError(
            f"replay.capacity: {cfg.replay.capacity} transitions of {list(setup.obs_shape)} "
            f"{np.dtype(setup.obs_dtype).name} take {_gib(need)} when full, and this host has "
            f"{_gib(total)} of memory; allowed: replay.capacity <= {fits}"
        )


def _gib(n: float) -> str:
    return f"{n / 2**40:.2f} TiB" if n >= 2**40 else f"{n / 2**30:.1f} GiB"


def _check_cpus(cfg: DQNConfig, cpus: float) -> None:
    if cfg.collectors.num_collectors > cpus:
        raise ConfigError(
            f"collectors.num_collectors: {cfg.collectors.num_collectors} collectors need one CPU "
            f"each, the Ray cluster has {cpus:g}; allowed: <= {int(cpus)}"
        )


def build_wiring(cfg: DQNConfig, setup: DQNSetup) -> Wiring:
    """Collectors and replay in this process, or as Ray actors once the cluster can hold them."""
    args = (cfg, setup.obs_shape, setup.obs_dtype, setup.n_actions)
    if cfg.local:
        from pipelines.dqn.local_wiring import LocalWiring

        return LocalWiring(*args)
    from pipelines.distributed.learner_actor import check_gpus
    from pipelines.distributed.ray_runtime import cluster_cpus, init_ray
    from pipelines.distributed.ray_wiring import RayWiring

    init_ray(address=cfg.address, num_cpus=cfg.num_cpus)
    _check_cpus(cfg, cluster_cpus())
    check_gpus(cfg)
    return RayWiring(*args)


def build_learner(cfg: DQNConfig, setup: DQNSetup, wiring: Wiring, local: Learner | None) -> LoopLearner:
    """``local`` fed by the wiring, or a learner in its own actor (``learner.placement``/``device``)."""
    if local is not None:
        return InProcessLearner(local, wiring, cfg.learner.publish_every)
    # With its GPU share: pipelines/distributed/learner_actor.py; setup.net mirrors it here.
    from pipelines.distributed.learner_actor import RemoteLearner

    remote = RemoteLearner(cfg, setup.obs_shape, setup.n_actions, wiring, mirror=setup.net)
    info = remote.info()
    graph = "a CUDA graph per update" if info["cuda_graph"] else "eager updates"
    print(f"adl: learner actor on {info['device']} ({graph}, {info['precision']})", file=sys.stderr)
    return remote


class GuardedCheckpoints:
    """Checkpoints that a failing disk cannot end the run with.

    The folder was checked writable before the run started (``pipelines/writable.py``); if a write
    fails later (disk full, folder made read-only or removed), the run logs a warning, the tag
    ``adl.checkpoint_error`` and the metric ``checkpoint_failures``, and trains on: the last good
    checkpoint stays where it was (a new one replaces it only once whole), and the run still ends
    with its models logged. A replay snapshot written by the replay actor fails the same way
    (Ray raises the actor's ``OSError`` as an ``OSError``).
    """

    def __init__(self, ckpt: Checkpointer, tracker: Tracker) -> None:
        self.ckpt, self.tracker = ckpt, tracker
        self.failures = self.upload_failures = 0
        self.uploaded = 0  # bytes of the last checkpoint copied to the run's artifacts
        self.last_good: int | None = None  # env steps of the last checkpoint written

    def save(self, state: LoopState) -> bool:
        try:
            self.ckpt.save(state)
        except OSError as e:
            self.failures += 1
            kept = f"step {self.last_good}" if self.last_good is not None else "none yet"
            msg = f"{type(e).__name__}: {e}"
            print(
                f"adl: warning: checkpoint at env step {state.env_steps} failed ({msg}); training goes "
                f"on, the last good checkpoint ({kept}) stays in {self.ckpt.dir}",
                file=sys.stderr,
                flush=True,
            )
            self.ckpt.discard_partial()
            self.tracker.set_tags({"adl.checkpoint_error": msg[:500]})
            self.tracker.log_metrics({"checkpoint_failures": float(self.failures)}, step=state.env_steps)
            return False
        self.last_good = state.env_steps
        self._upload(state)
        return True

    def _upload(self, state: LoopState) -> None:
        """The checkpoint to the run's artifacts (``checkpoint.upload``); a tracking server that is
        away costs the copy, never the run (the next checkpoint tries again)."""
        try:
            t0 = time.perf_counter()
            sent = self.ckpt.upload(self.tracker)
            self.ckpt.last_upload_s = time.perf_counter() - t0
            self.uploaded = sent
        except Exception as e:  # noqa: BLE001 - whatever the tracking client raises after its retries
            self.upload_failures += 1
            msg = f"{type(e).__name__}: {str(e).strip()[:300]}"
            print(
                f"adl: warning: copying the checkpoint at env step {state.env_steps} to the tracking server "
                f"failed ({msg}); training goes on, the next checkpoint tries again",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(Exception):  # the server may still be away
                self.tracker.set_tags({"adl.checkpoint_upload_error": msg[:500]})
                self.tracker.log_metrics(
                    {"checkpoint_upload_failures": float(self.upload_failures)}, step=state.env_steps
                )


def run_dqn(
    cfg: DQNConfig,
    tracker: Tracker,
    progress: bool = True,
    t_start: float | None = None,
    stop: StopSignals | None = None,
    ckpt_dir: Path | None = None,
    resume: dict[str, Any] | None = None,
    setup: DQNSetup | None = None,
    upload_slot: int = 0,
) -> tuple[LoopResult, LoopLearner]:
    """Build everything from ``cfg`` (or ``setup``) and train; ``t_start`` is when the clock started.

    With ``ckpt_dir`` it checkpoints there every ``checkpoint.every_s`` and at exit; ``resume`` is a
    verified manifest (:func:`pipelines.dqn.checkpoint_check.verify`) to continue from.
    """
    t0 = t_start if t_start is not None else time.time()
    setup = setup or DQNSetup.from_config(cfg)
    if setup.placement is None:  # the driver beside a learner actor (a learner here set them in setup)
        set_threads(cfg.learner.threads)
    wiring = build_wiring(cfg, setup)  # actors start in their own processes from here
    learner: LoopLearner | None = None
    try:
        # Built while the actors start: the optimizer's first construction imports torch._dynamo
        # (~1.4 s here), which the first batches need not wait for.
        local = None if cfg.learner_in_actor() else Learner(setup.net, cfg.learner, setup.placement)
        learner = build_learner(cfg, setup, wiring, local)
        with stop or StopSignals() as signals:  # after ray.init, which replaces the SIGTERM handler
            ckpt = (
                GuardedCheckpoints(Checkpointer(cfg, ckpt_dir, learner, wiring, setup.spaces), tracker)
                if ckpt_dir
                else None
            )
            if ckpt is not None:
                ckpt.ckpt.next_slot = upload_slot
            start = restore(resume, learner, wiring) if resume else None
            if start is not None:
                size = wiring.replay_size()
                tracker.log_metrics(
                    {"resumed_replay_size": size, "resumed_learner_steps": learner.steps},
                    step=start.env_steps,
                )
                print(
                    f"adl: resumed at {start.env_steps} env steps, learner step {learner.steps}, "
                    f"replay size {size}",
                    file=sys.stderr,
                )
            control = LoopControl(
                start, cfg.checkpoint.every_s, ckpt.save if ckpt else None, signals.requested
            )
            res = train_loop(cfg, wiring, learner, tracker, progress=progress, t_start=t0, control=control)
            if ckpt is not None and res.state is not None and ckpt.save(res.state):
                c = ckpt.ckpt
                print(f"adl: checkpoint written to {c.dir} ({c.last_write_s:.2f}s)", file=sys.stderr)
        return res, learner
    finally:
        if learner is not None:
            learner.stop()
        wiring.stop()
