"""A DQN checkpoint as input: everything in it checked before ``--resume`` touches the MLflow run.

A checkpoint folder may have been damaged, hand-edited, copied from elsewhere or written by other
code; a CRC that matches says only that a file is the one its manifest names. So :func:`verify`
refuses, with a :class:`~pipelines.dqn.checkpoint.CheckpointError` (exit 2) that names the file and
the field, anything the resumed run would trip over later, and leaves the run's status as it was:

- the manifest: JSON, the format, every field with its type (``network`` a mapping of parameter
  shapes, ``files`` a mapping of file name to ``{bytes, crc32}``), the config, spaces and network
  shapes this run has;
- the files: exactly ``learner.pt`` (and ``replay.arrow`` when the replay was saved), each listed
  with its size and crc32, and no other file in the folder (a replay left out of the manifest is
  refused, not loaded unchecked);
- ``learner.pt``: loaded here with ``torch.load(weights_only=True)`` (once: the resume uses this
  copy), with the networks' parameter shapes, an optimizer state for as many parameters, the RNG
  states and the loop counters;
- ``replay.arrow``: its metadata, schema and every value the replay would use
  (``components/replay/snapshot_check.py``). Its crc32 pass reads the file from disk; the column
  checks then read it through a memory map, from the page cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.replay.arrow_io import SnapshotError
from components.replay.snapshot_check import SnapshotSpec, check_snapshot
from components.rl.dqn.config import DQNConfig
from pipelines.dqn.checkpoint import (
    FORMAT,
    MANIFEST,
    CheckpointError,
    _crc32,
    check_config,
    find_checkpoint,
    network_shapes,
)
from pipelines.dqn.state import LoopState

FILES = ("learner.pt", "replay.arrow")  # what a checkpoint may hold besides its manifest
FIELDS: dict[str, Any] = {"format": str, "config": dict, "obs_shape": list, "obs_dtype": str}
FIELDS |= {"n_actions": int, "network": dict, "learner_steps": int, "loop": dict, "files": dict}
CRC = re.compile(r"[0-9a-f]{8}")


MAX_MANIFEST_BYTES = 16 << 20  # a manifest is a few KB
MAX_COUNT = 10**15  # env steps, episodes, samples: a thousand trillion is beyond any run, and exact
# as a float (MLflow's metric values) and an SQLite integer


def read_manifest(d: Path) -> dict[str, Any]:
    """The manifest of checkpoint folder ``d``, every field there with its type."""
    mpath = d / MANIFEST
    try:
        size = mpath.stat().st_size
        manifest = json.loads(mpath.read_text()) if size <= MAX_MANIFEST_BYTES else None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint manifest {mpath} cannot be read ({e})") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint manifest {mpath} is nested too deep to be a manifest") from None
    if manifest is None and size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"checkpoint manifest {mpath} is {size} bytes; a manifest is a few KB")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise CheckpointError(f"{mpath} is not an adl DQN checkpoint (format {fmt!r})")
    for key, tp in FIELDS.items():
        value = manifest.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, tp):
            raise CheckpointError(
                f"checkpoint manifest {mpath}: field {key!r} is {value!r}; expected a {tp.__name__}"
            )
    if not all(isinstance(v, int) and v > 0 for v in manifest["obs_shape"]) or manifest["n_actions"] < 1:
        raise CheckpointError(f"checkpoint manifest {mpath}: field 'obs_shape' or 'n_actions' is not a size")
    for k, shape in manifest["network"].items():
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise CheckpointError(
                f"checkpoint manifest {mpath}: field 'network.{k}' is {shape!r}, not a shape"
            )
    return manifest


def check_files(d: Path, manifest: dict[str, Any]) -> None:
    """Every file listed, whole and uncorrupted; nothing in the folder that is not listed."""
    mpath = d / MANIFEST
    files = manifest["files"]
    for name, info in files.items():
        if name not in FILES:
            raise CheckpointError(
                f"checkpoint manifest {mpath}: field 'files' lists {name!r}; allowed: {FILES}"
            )
        ok = isinstance(info, dict) and isinstance(info.get("bytes"), int) and info["bytes"] >= 0
        if not ok or not isinstance(info.get("crc32"), str) or not CRC.fullmatch(info["crc32"]):
            raise CheckpointError(
                f"checkpoint manifest {mpath}: field 'files.{name}' is {info!r}, not {{bytes, crc32}}"
            )
    if "learner.pt" not in files:
        raise CheckpointError(f"checkpoint manifest {mpath}: field 'files' does not list learner.pt")
    for p in sorted(d.iterdir()):
        if p.name != MANIFEST and p.name not in files:
            raise CheckpointError(f"checkpoint file {p} is not listed in {mpath}; it is not loaded unchecked")
    for name, info in files.items():
        p = d / name
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} is missing (listed in {mpath})")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(
                f"checkpoint file {p} is truncated or changed: {size} bytes, "
                f"the manifest says {info['bytes']}"
            )
        if _crc32(p) != info["crc32"]:
            raise CheckpointError(f"checkpoint file {p} is corrupt: its crc32 differs from {mpath}")


def _field(path: Path, key: str, ok: bool) -> None:
    if not ok:
        raise CheckpointError(f"checkpoint file {path}: field {key!r} is missing or not what a learner wrote")


def _check_loop(path: Path, loop: Any) -> LoopState:
    names = {f.name for f in dataclasses.fields(LoopState)}
    _field(path, "loop", isinstance(loop, dict) and set(loop) <= names)
    state = LoopState(**loop)
    for key in ("env_steps", "episodes", "inserts", "samples", "next_eval"):
        value = getattr(state, key)
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT
        _bounded(path, f"loop.{key}", value, ok)
    for key in ("wall_s", "train_s"):
        value = getattr(state, key)
        ok = value is None or (isinstance(value, float | int) and 0 <= value < 1e9)  # 30 years of seconds
        _bounded(path, f"loop.{key}", value, ok)
    _field(
        path, "loop.best_eval", isinstance(state.best_eval, float | int) and not math.isnan(state.best_eval)
    )
    steps = state.collector_env_steps
    _field(
        path,
        "loop.collector_env_steps",
        isinstance(steps, list) and all(isinstance(n, int) and 0 <= n <= MAX_COUNT for n in steps),
    )
    _bounded(path, "loop.collector_env_steps", sum(steps), sum(steps) <= state.env_steps)
    faults = state.faults
    _field(
        path,
        "loop.faults",
        isinstance(faults, dict)
        and all(isinstance(v, float | int) and 0 <= v <= MAX_COUNT for v in faults.values()),
    )
    return state


def _bounded(path: Path, key: str, value: Any, ok: bool) -> None:
    if not ok:
        raise CheckpointError(
            f"checkpoint file {path}: field {key!r} is {value!r}; allowed: a count from 0 to {MAX_COUNT:.0e} "
            f"(and collectors' steps adding up to at most loop.env_steps)"
        )


def _finite(path: Path, key: str, tensors: dict[str, Any]) -> None:
    """Every floating-point tensor finite: a NaN weight makes every loss after the resume NaN."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"checkpoint file {path}: {key}.{name} holds NaN or inf values")


def load_learner(path: Path, net: torch.nn.Module, learner_steps: int, lr: float) -> dict[str, Any]:
    """``learner.pt`` loaded safely and checked against this run's network; what ``restore`` uses."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint file {path} cannot be read ({type(e).__name__}: {e})") from None
    _field(path, "learner", isinstance(payload, dict) and isinstance(payload.get("learner"), dict))
    learner, shapes = payload["learner"], network_shapes(net)
    for part in ("online", "target"):
        sd = learner.get(part)
        _field(
            path,
            f"learner.{part}",
            isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values()),
        )
        _finite(path, f"learner.{part}", sd)
        got = {k: list(v.shape) for k, v in sd.items()}
        if got != shapes:
            bad = sorted(k for k in set(got) | set(shapes) if got.get(k) != shapes.get(k))[0]
            raise CheckpointError(
                f"checkpoint file {path}: learner.{part}.{bad} has shape {got.get(bad)}, "
                f"this network {shapes.get(bad)}"
            )
    opt = learner.get("optimizer")
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    n_params = len(list(net.parameters()))
    _field(
        path,
        "learner.optimizer",
        isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(groups, list),
    )
    _field(path, "learner.optimizer.param_groups", sum(len(g.get("params", [])) for g in groups) == n_params)
    for i, state in opt["state"].items():  # Adam's moments and step
        _field(path, f"learner.optimizer.state.{i}", isinstance(state, dict))
        _finite(path, f"learner.optimizer.state.{i}", state)
    for g in groups:  # the optimizer's own hyperparameters are the config's (learner.lr cannot change)
        if not isinstance(g.get("lr"), float | int) or not math.isclose(float(g["lr"]), lr, rel_tol=1e-9):
            raise CheckpointError(
                f"checkpoint file {path}: learner.optimizer lr is {g.get('lr')!r}, the config's learner.lr "
                f"{lr!r}; a resume continues with the config it was started with"
            )
    _field(path, "learner.steps", learner.get("steps") == learner_steps)
    rng = payload.get("rng")
    want = torch.get_rng_state()
    ok = isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor)
    _field(path, "rng.torch", ok and rng["torch"].dtype == want.dtype and rng["torch"].shape == want.shape)
    cuda = rng.get("cuda")
    _field(
        path,
        "rng.cuda",
        cuda is None or (isinstance(cuda, torch.Tensor) and cuda.dtype == torch.uint8 and cuda.dim() == 2),
    )
    _check_loop(path, payload.get("loop"))
    return payload  # type: ignore[no-any-return]


def replay_spec(cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: str, n_actions: int) -> SnapshotSpec:
    r = cfg.replay
    return SnapshotSpec(
        r.capacity,
        r.kind,
        r.alpha,
        tuple(obs_shape),
        np.dtype(obs_dtype).str,
        n_actions,
        cfg.learner.n_step,
        frame_stack=cfg.atari.enabled,
    )


def verify(
    ckpt: Path,
    cfg: DQNConfig,
    obs_shape: tuple[int, ...],
    n_actions: int,
    net: Any,
    obs_dtype: Any = None,
) -> dict[str, Any]:
    """Check a checkpoint before anything of the run is touched; returns its manifest, with the
    checked ``learner.pt`` contents under ``learner_payload`` and its folder under ``path``.

    Raises:
        CheckpointError: naming the file and the field that is missing, malformed, truncated,
            corrupt or out of range, or the config keys, spaces or network parameters that differ.
    """
    d = find_checkpoint(ckpt)
    manifest = read_manifest(d)
    check_config(d, manifest, cfg, obs_shape, n_actions, net)
    check_files(d, manifest)
    payload = load_learner(d / "learner.pt", net, manifest["learner_steps"], cfg.learner.lr)
    if payload["loop"] != manifest["loop"]:  # the manifest's counters are the learner file's
        raise CheckpointError(
            f"checkpoint {d}: the counters in {MANIFEST} (field 'loop') differ from those in learner.pt"
        )
    if "replay.arrow" in manifest["files"]:
        dtype = obs_dtype if obs_dtype is not None else manifest["obs_dtype"]
        try:
            meta = check_snapshot(d / "replay.arrow", replay_spec(cfg, obs_shape, dtype, n_actions))
        except (SnapshotError, TypeError) as e:
            raise CheckpointError(str(e)) from None
        said = manifest.get("replay", {}).get("size") if isinstance(manifest.get("replay"), dict) else None
        if said is not None and said != meta["size"]:
            raise CheckpointError(
                f"checkpoint file {d / 'replay.arrow'}: size {meta['size']}, the manifest says {said}"
            )
    manifest["path"], manifest["learner_payload"] = str(d), payload
    return manifest
