"""The pre-flight of one DQN run: every check it needs, once, up front, before Ray starts; the run
then takes the facts it found (a frozen :class:`RunPlan`) instead of checking again.

What ``adl train dqn`` checks, in order, and where (each exactly once; a refusal exits 2 with the
key, the value and what is allowed, before any MLflow run is opened):

1. the config, key by key (``components/config.build``, when the CLI loads it);
2. the tracking URI, reachable and writable (``pipelines/tracking/uri.check_reachable``, by the CLI
   for every family, before torch or Ray load); for ``--resume``, that the run exists;
3. here, :func:`preflight`: ``checkpoint.dir`` made absolute; the env's spaces against the network
   and, for a learner in this process, its placement: the device, precision and threads resolved
   once, and its GPU-only options (``DQNSetup``, ``components/rl/dqn/learner.learner_placement``); the
   full replay against this host's memory; the CPUs and GPUs of the Ray the run will use (a local
   Ray's are known without starting it; a cluster's only once joined, so the pre-flight joins it,
   checks it once, and the run uses that connection); the checkpoint folder and the temp folder
   writable;
4. for ``--resume``, the checkpoint itself and the resumed run's folder (``train.py``, before the run
   is touched). A learner actor resolves its own placement on the GPU Ray gives it.

``build_wiring`` (``run.py``) then starts or joins Ray and places the actors without checking again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import nn

from components.config import ConfigError
from components.device import Placement
from components.replay.factory import replay_bytes
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import check_spaces
from components.rl.dqn.learner import learner_placement
from components.rl.dqn.networks import build_q_network
from pipelines.distributed.jobs import in_ray_job
from pipelines.writable import check_run_folders


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


@dataclass(frozen=True)
class RayResources:
    """The Ray a run goes to, as the pre-flight found it."""

    cpus: float  # CPUs it has (a local Ray: num_cpus, default this host's)
    gpus: float  # GPUs it has (a local Ray: this host's)
    joined: bool  # a running cluster (address / $RAY_ADDRESS), joined by the pre-flight to ask its size


@dataclass(frozen=True)
class RunPlan:
    """What the pre-flight established; the rest of the run takes it instead of checking again."""

    cfg: DQNConfig  # the run's config, with checkpoint.dir absolute
    setup: DQNSetup
    ray: RayResources | None  # None: local: true (no Ray)

    @property
    def checkpoint_root(self) -> Path:
        """``checkpoint.dir``, absolute: each run writes ``<it>/<run_id>/checkpoint/``."""
        return Path(self.cfg.checkpoint.dir)


def preflight(cfg: DQNConfig, folders: bool = True) -> RunPlan:
    """Every check of a DQN run that needs no MLflow run, once (see the module's docstring).

    Args:
        cfg: the validated config.
        folders: check ``checkpoint.dir`` and the temp folder writable (a new run; a resume checks
            the folder of the run it resumes instead, and ``run_dqn`` without a tracked run writes
            where its caller says).

    Raises:
        ConfigError: the first check that fails, naming the key and what is allowed.
    """
    cfg = absolute_checkpoint_dir(cfg)
    setup = DQNSetup.from_config(cfg)  # unknown ids, continuous actions, pixel env with the MLP
    check_memory(cfg, setup)  # the replay lives on this host
    ray = check_resources(cfg)  # collectors and GPU shares the Ray it runs on can place
    if folders:
        check_run_folders(cfg.checkpoint.dir)  # writable now, not at the first checkpoint
    return RunPlan(cfg, setup, ray)


def absolute_checkpoint_dir(cfg: DQNConfig) -> DQNConfig:
    """``cfg`` with ``checkpoint.dir`` absolute, taken before Ray is joined: inside a Ray job that
    moves this process out of its working dir, and a relative folder goes under the home folder
    there (the job's working dir is deleted after it)."""
    base = Path.home() if in_ray_job() else Path.cwd()
    folder = str((base / Path(cfg.checkpoint.dir).expanduser()).resolve())
    return replace(cfg, checkpoint=replace(cfg.checkpoint, dir=folder))


def check_resources(cfg: DQNConfig) -> RayResources | None:
    """Refuse, before a run is opened, collectors or GPU shares the Ray it will run on cannot place.

    A local Ray has ``num_cpus`` (default: this host's) CPUs and this host's GPUs, known without
    starting it (``ray_runtime._start_local`` starts it with exactly these). A cluster is joined now
    (well under a second) and asked; the run goes on over this connection."""
    if cfg.local:
        return None
    # Ray's side of adl (its actors' modules import Ray): a local run (local: true) never loads it
    from pipelines.distributed.learner_actor import check_gpus
    from pipelines.distributed.ray_runtime import joins_cluster

    if joins_cluster(cfg.address):
        # Ray: only to join a cluster
        from pipelines.distributed.ray_runtime import init_ray, ray_size

        init_ray(address=cfg.address)
        cpus, gpus = ray_size()
        found = RayResources(cpus, gpus, joined=True)
    else:
        found = RayResources(
            float(cfg.num_cpus or os.cpu_count() or 1), float(torch.cuda.device_count()), False
        )
    _check_cpus(cfg, found.cpus)
    check_gpus(cfg, have=found.gpus)
    return found


def check_memory(cfg: DQNConfig, setup: DQNSetup, total_bytes: int | None = None) -> None:
    """Refuse, before a run is opened, a replay that cannot fit in this host's memory when full (it
    lives here, on the driver's node): numpy reserves it lazily, so it would fail, or be killed, hours
    in. ``total_bytes`` defaults to this host's memory."""
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
