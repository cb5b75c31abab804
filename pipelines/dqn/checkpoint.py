"""DQN checkpoints on disk: what is saved, how a half-written one is never taken for whole, how it is checked.

A checkpoint is a folder ``<checkpoint.dir>/<run_id>/checkpoint/`` holding

- ``learner.pt``: online and target networks, optimizer, learner step, torch RNG states and the loop's
  counters (:class:`LoopState`: env steps, episodes, limiter counts, next evaluation, the collectors'
  ε-schedule positions), written with ``torch.save`` and read with ``torch.load(weights_only=True)``;
- ``replay.arrow``: the replay's arrays, priorities and sampling RNG (``components/replay/snapshot.py``);
- ``manifest.json``, written last: format, config and its hash, spaces, network shapes, counters, and
  every file's size and crc32.

It is written as ``checkpoint.tmp/``, then the previous ``checkpoint/`` is renamed ``checkpoint.old/``,
the new one takes its name and the old one is deleted. A crash at any point leaves either a folder
with a manifest that matches its files or none; a loader that finds no whole ``checkpoint/`` falls back
to ``checkpoint.old/``. What a resume checks before it trusts a checkpoint is
``pipelines/dqn/checkpoint_check.py``. Nothing here imports Ray or MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import ConfigError, flatten, to_dict
from components.rl.dqn.config import DQNConfig
from pipelines.dqn.state import LoopLearner, LoopState, Wiring

FORMAT = "adl-dqn-checkpoint-1"
MANIFEST = "manifest.json"
# The run's artifacts hold two copies, written in turn, so that a copy cut off by the host's death
# always leaves the other one whole: a resume takes the newest whole one.
UPLOAD_SLOTS = ("checkpoint", "checkpoint.alt")
# Keys a resumed run may change: budgets, logging, where it runs, checkpointing, evaluation.
RESUMABLE = ("max_env_steps", "max_time_s", "log_every_s", "local", "num_cpus", "address")
RESUMABLE_PREFIXES = (
    "checkpoint.",
    "eval.",
    "learner.device",
    "learner.threads",
    "learner.placement",
    "learner.num_gpus",
    # How the learner and the collectors compute, not what: a GPU run resumes on a CPU (and back), and
    # checkpoints written before these keys existed still verify.
    "learner.cuda_graph",
    "learner.precision",
    "learner.tf32",
    "collectors.inference",
)
# Keys a checkpoint's stored config may carry under an older name: read back under the new one.
RENAMED = {"learner.num_threads": "learner.threads"}


class CheckpointError(ConfigError):
    """A checkpoint that cannot be resumed: missing, not whole, or from another config."""


def checkpoint_dir(cfg: DQNConfig, run_id: str) -> Path:
    return (Path(cfg.checkpoint.dir) / run_id / "checkpoint").resolve()


def config_identity(cfg: DQNConfig) -> dict[str, Any]:
    """The config keys a checkpoint must agree on (everything but budgets, logging and placement)."""
    return _identity(flatten(to_dict(cfg)))


def _identity(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k not in RESUMABLE and not k.startswith(RESUMABLE_PREFIXES)}


def stored_identity(stored: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored config as this version names it (:data:`RENAMED`), with the keys a resume
    may change left out, as :func:`config_identity` leaves them out of this run's."""
    return _identity({RENAMED.get(k, k): v for k, v in stored.items()})


def config_hash(cfg: DQNConfig) -> str:
    text = json.dumps(config_identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _crc32(path: Path) -> str:
    """A checksum against truncation and corruption (not tampering): ~2x faster than sha256 here."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def _fsync_write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def network_shapes(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


class Checkpointer:
    """Writes the checkpoints of one run; ``save`` is what the loop calls every ``every_s`` and at exit."""

    def __init__(
        self,
        cfg: DQNConfig,
        directory: Path,
        learner: LoopLearner,
        wiring: Wiring,
        spaces: tuple[tuple[int, ...], str, int],
    ) -> None:
        self.cfg, self.learner, self.wiring = cfg, learner, wiring
        self.dir = Path(directory)
        self.run_id = self.dir.parent.name
        self.obs_shape, self.obs_dtype, self.n_actions = spaces
        self.last_write_s = self.last_upload_s = 0.0
        self.next_slot = 0  # which of UPLOAD_SLOTS the next copy goes to

    def save(self, state: LoopState) -> Path:
        t0 = time.perf_counter()
        tmp = self.dir.with_name("checkpoint.tmp")
        old = self.dir.with_name("checkpoint.old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
        torch.save(
            {"learner": self.learner.state_dict(), "rng": rng, "loop": asdict(state)}, tmp / "learner.pt"
        )
        replay_meta: dict[str, Any] = {}
        if self.cfg.checkpoint.replay:
            replay_meta = self.wiring.save_replay(tmp / "replay.arrow", self.cfg.checkpoint.compression)
        files = {p.name: {"bytes": p.stat().st_size, "crc32": _crc32(p)} for p in sorted(tmp.iterdir())}
        manifest = {
            "format": FORMAT,
            "run_id": self.run_id,
            "written_at": time.time(),
            "config_hash": config_hash(self.cfg),
            "config": config_identity(self.cfg),
            "obs_shape": list(self.obs_shape),
            "obs_dtype": self.obs_dtype,
            "n_actions": self.n_actions,
            "network": network_shapes(self.learner.online),
            "learner_steps": self.learner.steps,
            "loop": asdict(state),
            "replay": {k: replay_meta[k] for k in ("size", "inserts", "cursor") if k in replay_meta},
            "files": files,
        }
        _fsync_write(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str))
        if self.dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.dir.rename(old)
        tmp.rename(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        if self.cfg.checkpoint.replay:
            self.wiring.set_snapshot(self.dir / "replay.arrow", int(replay_meta["inserts"]))
        self.last_write_s = time.perf_counter() - t0
        return self.dir

    def upload(self, tracker: Any) -> int:
        """Copy the checkpoint just written to the run's artifacts (what ``checkpoint.upload`` says:
        all, learner, none), so that it outlives this machine: into ``checkpoint/`` and
        ``checkpoint.alt/`` in turn, each copy's data files first and its manifest last. A copy cut off
        half-way (this host died during it) fails its checksums, and the other slot still holds the
        copy before it, whole. Returns the bytes sent."""
        what = self.cfg.checkpoint.upload
        if what == "none" or not (self.dir / MANIFEST).is_file():
            return 0
        parts = [p for p in sorted(self.dir.iterdir()) if p.is_file() and p.name != MANIFEST]
        if what == "learner":
            parts = [p for p in parts if p.name == "learner.pt"]
        slot = UPLOAD_SLOTS[self.next_slot]
        for p in [*parts, self.dir / MANIFEST]:
            tracker.log_artifact(p, slot)
        self.next_slot = 1 - self.next_slot
        return sum(p.stat().st_size for p in [*parts, self.dir / MANIFEST])

    def discard_partial(self) -> None:
        """Remove what a failed write left (``checkpoint.tmp``); the last whole checkpoint stays."""
        shutil.rmtree(self.dir.with_name("checkpoint.tmp"), ignore_errors=True)


def find_checkpoint(ckpt: Path) -> Path:
    """``checkpoint/`` if it has a manifest, else ``checkpoint.old/`` (a crash between the renames)."""
    for d in (ckpt, ckpt.with_name("checkpoint.old")):
        if (d / MANIFEST).is_file():
            return d
    raise CheckpointError(
        f"no checkpoint at {ckpt}: {ckpt / MANIFEST} is missing (the run stopped before its first "
        f"checkpoint, or the checkpoint was written elsewhere: see checkpoint.dir)"
    )


def check_config(
    d: Path, manifest: dict[str, Any], cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, net: Any
) -> None:
    """The config keys, spaces and network parameter shapes agree with this run's."""
    mine, theirs = config_identity(cfg), stored_identity(manifest["config"])
    diff = [
        f"{k}: {theirs.get(k, '<absent>')!r} in the checkpoint, {mine.get(k, '<absent>')!r} now"
        for k in sorted(set(mine) | set(theirs))
        if json.dumps(mine.get(k), default=str) != json.dumps(theirs.get(k), default=str)
    ]
    if diff:
        raise CheckpointError(
            f"checkpoint {d} was written with another config ({len(diff)} keys differ): "
            + "; ".join(diff[:5])
            + ("; ..." if len(diff) > 5 else "")
            + ". Resume with the same --config and --set values (budgets, eval.* and checkpoint.* may differ)"
        )
    if manifest["obs_shape"] != list(obs_shape) or manifest["n_actions"] != n_actions:
        raise CheckpointError(
            f"checkpoint {d} has observations {tuple(manifest['obs_shape'])} and {manifest['n_actions']} "
            f"actions; this env has {tuple(obs_shape)} and {n_actions}"
        )
    shapes = network_shapes(net)
    for k in sorted(set(shapes) | set(manifest["network"])):
        if shapes.get(k) != manifest["network"].get(k):
            raise CheckpointError(
                f"checkpoint {d}: network parameter {k} has shape {manifest['network'].get(k)} there, "
                f"{shapes.get(k)} here"
            )


def restore(manifest: dict[str, Any], learner: LoopLearner, wiring: Wiring) -> LoopState:
    """Load a verified checkpoint into the learner and the replay; returns the loop's counters."""
    d = Path(manifest["path"])
    payload = manifest.get("learner_payload")  # verify loaded and checked it
    if payload is None:
        try:
            payload = torch.load(d / "learner.pt", map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"checkpoint file {d / 'learner.pt'} cannot be read ({e})") from e
    learner.load_state_dict(payload["learner"])  # copies onto the learner's device (CPU ↔ GPU)
    torch.set_rng_state(payload["rng"]["torch"])
    if "cuda" in payload["rng"] and torch.cuda.is_available():
        states = list(payload["rng"]["cuda"])
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    if (d / "replay.arrow").is_file():
        meta = wiring.load_replay(d / "replay.arrow")
        wiring.set_snapshot(d / "replay.arrow", int(meta["inserts"]))
    state = LoopState(**payload["loop"])
    state.best_eval = float(np.float64(state.best_eval))
    return state
