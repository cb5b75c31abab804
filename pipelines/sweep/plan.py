"""What ``adl sweep`` will run, resolved and checked before Ray starts: the sweep and its family's base
config (every searched value validated), where its state lives, and for ``--resume`` the saved state,
trusted only when adl signed it.

The sweep's state file (``adl_sweep.json``, in the sweep's folder ``<storage_path>/<name>/``, on a
local disk or on S3 beside Tune's own files) and Ray Tune's files
(``tuner.pkl``, the experiment state, which Tune unpickles) are signed with the user's key
(``pipelines/signing.py``, ``pipelines/sweep/signature.py``). A resume verifies both before Ray
or Tune opens anything, and refuses (exit 2) state it cannot trust, saying how to go on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from components.config import ConfigError, apply_overrides, apply_values, build, parse_yaml, read_yaml
from pipelines.distributed.jobs import in_ray_job
from pipelines.distributed.search_space import all_values
from pipelines.families import family_spec, get_family
from pipelines.signing import KEY_FILE, SignatureError, check_signed, config_dir, signed
from pipelines.sweep.config import SweepConfig, check_sweep_name
from pipelines.sweep.signature import describe_changes, open_folder, sign_folder, verify_folder
from pipelines.tracking.uri import check_reachable, resolve_tracking_uri
from pipelines.writable import check_writable

SWEEP_STATE = "adl_sweep.json"
STATE_KEYS = ("sweep_file", "tracking_uri", "experiment", "tune_path", "parent_run_id", "sweep_text")


def _dotted_set(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


def _sweep_config(data: dict[str, Any], path: Path, overrides: Sequence[str]) -> SweepConfig:
    sweep = build(SweepConfig, apply_overrides(data, overrides))
    if sweep.name is None:  # a frozen config: the named one is a copy
        sweep = replace(sweep, name=check_sweep_name(path.stem, f"name (from the file name {path.name})"))
    return sweep


def _base_path(sweep: SweepConfig, path: Path) -> Path:
    base_path = Path(sweep.base_config)
    if not base_path.is_file() and (path.parent.parent.parent / base_path).is_file():
        base_path = path.parent.parent.parent / base_path  # relative to the repo, not the cwd
    return base_path


def load_sweep(
    path: str | Path, overrides: Sequence[str] = (), signed_state: dict[str, Any] | None = None
) -> tuple[SweepConfig, dict[str, Any]]:
    """The sweep config and its family's base config as plain data, both validated (and each
    config checked by the family's ``check``: the env made once with its kwargs). With the
    ``signed_state`` of a sweep being resumed, both come from it, as they were when it started,
    whatever the files on disk now say."""
    path = Path(path)
    if signed_state is not None:
        sweep = _sweep_config(parse_yaml(signed_state["sweep_text"], str(path)), path, overrides)
        base = signed_state["base"]
    else:
        sweep = _sweep_config(read_yaml(path), path, overrides)
        base = apply_overrides(read_yaml(_base_path(sweep, path)), _dotted_set(sweep.overrides))
    _validate(sweep, base)
    return sweep, base


def _validate(sweep: SweepConfig, base: dict[str, Any]) -> None:
    family = get_family(sweep.family)
    base_cfg = build(family.config_cls, base)  # the base config itself is valid
    if family.check is not None:
        family.check(base_cfg)
    for key, values in all_values(sweep.search_space).items():
        for v in values:
            try:
                cfg = build(family.config_cls, apply_values(base, {key: v}))
                if family.check is not None:
                    family.check(cfg)
            except ConfigError as e:
                raise ConfigError(f"search_space.{key} = {v!r}: {e}") from None


def _note_changed_files(path: Path, overrides: Sequence[str], state: dict[str, Any]) -> None:
    """Say so when the sweep's files on disk are no longer what it started with (the resume goes on
    with what it started with: it is signed in its state)."""
    changed = []
    try:
        if path.read_text() != state["sweep_text"]:
            changed.append(str(path))
        sweep = _sweep_config(read_yaml(path), path, overrides)
        base_path = _base_path(sweep, path)
        if apply_overrides(read_yaml(base_path), _dotted_set(sweep.overrides)) != state["base"]:
            changed.append(str(base_path))
    except (OSError, ConfigError):
        changed.append(f"{path} (or its base config: unreadable now)")
    if changed:
        print(
            f"adl: note: {' and '.join(changed)} changed since the sweep started; the resume runs it as it "
            f"started (the sweep and its base config are part of its signed state)",
            file=sys.stderr,
        )


@dataclass
class SweepPlan:
    """Everything a sweep run is built from, resolved and validated before Ray starts."""

    sweep: SweepConfig
    base: dict[str, Any]  # the family config as plain data, sweep overrides applied
    sweep_path: Path
    sweep_text: str  # the sweep file's content when the sweep started (signed with its state)
    overrides: list[str]
    metric: str
    mode: str
    uri: str
    experiment: str
    exp_dir: str  # where adl_sweep.json lives: the Tune experiment's folder (a path or a URI)
    storage: str  # Tune's storage_path (a folder or a URI)
    tune_path: str  # the Tune experiment inside it
    driver_cwd: Path
    in_job: bool  # under `adl submit`: the working dir is a temporary copy
    parent_run_id: str | None = None  # set when resuming
    verified: dict[str, bytes] = field(default_factory=dict)  # resuming: the state files as checked


def _refusal(resume: str, exp_dir: str, err: SignatureError) -> SignatureError:
    return SignatureError(
        f"adl sweep --resume {resume}: {err}. Ray Tune reads a sweep's state with pickle, which runs "
        f"whatever code the files hold, so adl resumes only state it signed itself (with the key "
        f"{config_dir() / KEY_FILE}). If this sweep's driver was killed while Tune was saving, and "
        f"nobody else can write {exp_dir} or the sweep's storage_path, accept the files as they are "
        f"with `adl sweep --resume {resume} --trust-state`; otherwise run the sweep again under a "
        f"new name (--set name=...)"
    )


def _read_text(folder: str, name: str) -> str | None:
    """``folder/name`` on a local disk or any storage pyarrow reaches (s3://, gs://); None if absent."""
    fs, root = open_folder(folder)
    try:
        with fs.open_input_stream(f"{root}/{name}") as f:
            return bytes(f.read()).decode()
    except FileNotFoundError:
        return None


def _write_text(folder: str, name: str, text: str) -> None:
    fs, root = open_folder(folder)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{name}") as f:
        f.write(text.encode())


def state_folder(resume: str, storage_root: Path) -> str:
    """Where the sweep ``resume`` names keeps its state: a URI as it is, a folder, or a name under
    ``storage_root``."""
    if "://" in resume and not resume.startswith("file://"):
        return resume.rstrip("/")
    if Path(resume.removeprefix("file://")).is_dir():
        return str(Path(resume.removeprefix("file://")).resolve())
    return str(storage_root / check_sweep_name(resume, "--resume"))


def _confirm_trust(resume: str, exp_dir: str, raw: Any, yes: bool) -> None:
    """What ``--trust-state`` would sign, file by file, with what changed since adl signed it; asked
    on the terminal unless ``yes`` (refused, exit 2, with no terminal to ask on)."""
    try:
        check_signed(raw, SWEEP_STATE)
        status = "unchanged"
    except SignatureError as e:
        status = "never signed" if "no adl signature" in str(e) else "changed since adl signed it"
    rows = [(f"{exp_dir}/{SWEEP_STATE}", status)]
    tune_path = raw.get("tune_path") if isinstance(raw, dict) else None
    if isinstance(tune_path, str):
        rows += [(f"{tune_path.rstrip('/')}/{rel}", why) for rel, why in describe_changes(tune_path)]
    changed = sum(why != "unchanged" for _, why in rows)
    print(
        f"adl: --trust-state signs the {len(rows)} file(s) of sweep {resume} that Tune unpickles, as "
        f"they are now ({changed} not as adl signed them):",
        file=sys.stderr,
    )
    for name, why in rows:
        print(f"  {why:<28} {name}", file=sys.stderr)
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("--trust-state: confirm signing the files above with --yes (no terminal to ask on)")
    answer = input("Sign them and resume? Only if nobody else can write these folders. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ConfigError("--trust-state: not confirmed; nothing was signed")


def read_state(
    resume: str, storage_root: Path, trust: bool = False, yes: bool = False
) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    """The signed state of sweep ``resume`` (a name, its folder, or its storage URI), its Tune
    folder verified.

    With ``trust`` the files are signed as they are first (the user vouches for them, once shown
    each file and what changed, and asked unless ``yes``)."""
    exp_dir = state_folder(resume, storage_root)
    where = f"{exp_dir}/{SWEEP_STATE}"
    try:
        text = _read_text(exp_dir, SWEEP_STATE)
    except OSError as e:
        raise ConfigError(f"--resume {resume}: {where} cannot be read ({e})") from None
    if text is None:
        raise ConfigError(f"--resume {resume}: no sweep state at {where}")
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"--resume {resume}: {where} cannot be read ({e})") from None
    if trust:
        _confirm_trust(resume, exp_dir, raw, yes)
    try:
        if trust and isinstance(raw, dict):
            raw = signed(raw)
            _write_text(exp_dir, SWEEP_STATE, json.dumps(raw))
        state = check_signed(raw, where)
        bad = [k for k in STATE_KEYS if not isinstance(state.get(k), str)]
        bad += [] if isinstance(state.get("base"), dict) else ["base"]
        overrides = state.get("overrides")
        if bad or not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(
                f"--resume {resume}: {where} lacks or mistypes {bad or ['overrides']} (a sweep started "
                f"before adl kept its config in its state cannot be resumed: run it again)"
            )
        if trust:
            sign_folder(state["tune_path"])
        verified = verify_folder(state["tune_path"])
    except SignatureError as e:
        raise _refusal(resume, exp_dir, e) from None
    return exp_dir, state, verified


def write_state(plan: SweepPlan, parent_run_id: str) -> None:
    """What ``adl sweep --resume NAME`` needs to pick the sweep up again, signed, in the sweep's
    folder of its storage (so a sweep on S3 resumes from any machine that reaches it)."""
    state = {
        "sweep_file": str(plan.sweep_path),
        "overrides": plan.overrides,
        "tracking_uri": plan.uri,
        "experiment": plan.experiment,
        "tune_path": plan.tune_path,
        "parent_run_id": parent_run_id,
        "sweep_text": plan.sweep_text,  # what a resume runs, whatever the files say by then
        "base": plan.base,
    }
    _write_text(plan.exp_dir, SWEEP_STATE, json.dumps(signed(state)))


def remove_state(plan: SweepPlan) -> None:
    """Delete the sweep's folder (its state and Tune's): a sweep that ended before any trial reported
    leaves nothing worth resuming, and its name is free again."""
    fs, root = open_folder(plan.tune_path)
    fs.delete_dir(root)


def threads_for_trials(sweep: SweepConfig, base: dict[str, Any]) -> dict[str, Any]:
    """Trials of a family with ``train.threads`` use the CPUs each asks for (``resources.cpu``),
    unless the sweep file sets the threads itself (``overrides`` or ``search_space``): never torch's
    default of every core of the node, and never a base config's own count, which is sized for a run
    alone (``mnist_dcgan_conditional.yaml`` asks for both cores of a 2-core machine)."""
    if "train.threads" in sweep.search_space or "train.threads" in sweep.overrides:
        return base
    config_cls = family_spec(sweep.family).config_cls()
    try:
        build(config_cls, apply_values(base, {"train.threads": 1}))
    except ConfigError:  # this family has no train.threads (Q-learning is numpy)
        return base
    return apply_values(base, {"train.threads": max(1, int(sweep.resources.cpu))})


def check_devices(sweep: SweepConfig, base: dict[str, Any]) -> None:
    """A trial that must train on a GPU (``train.device: cuda``) needs a GPU share of its own: Ray
    gives a ``resources.gpu: 0`` trial no GPU at all, so every such trial would fail as it starts."""
    train = base.get("train") if isinstance(base.get("train"), dict) else {}
    devices = [train.get("device", "auto"), *all_values(sweep.search_space).get("train.device", [])]
    cuda = [d for d in devices if isinstance(d, str) and d.startswith("cuda")]
    if cuda and sweep.resources.gpu <= 0:
        raise ConfigError(
            f"train.device: {cuda[0]} needs a GPU, but each trial asks Ray for resources.gpu: "
            f"{sweep.resources.gpu:g}, so none is given one; allowed: resources.gpu > 0 (e.g. 0.25), or "
            f"train.device: auto (a GPU where the trial has one, else its CPUs) or cpu"
        )


def _state_exists(exp_dir: str, storage: str) -> bool:
    try:
        return _read_text(exp_dir, SWEEP_STATE) is not None
    except (OSError, ValueError) as e:  # an unknown scheme; S3 credentials missing on this machine
        raise ConfigError(
            f"storage_path {storage}: cannot be read here ({type(e).__name__}: {e}); allowed: a folder, or a "
            f"URI pyarrow reads (s3://BUCKET/PATH, gs://BUCKET/PATH, hdfs://...) with its credentials"
        ) from None


def plan_sweep(
    sweep_path: str | Path | None,
    overrides: list[str],
    tracking_uri: str | None,
    experiment: str | None,
    resume: str | None,
    trust_state: bool = False,
    yes: bool = False,
) -> SweepPlan:
    # Inside a Ray job (adl submit) the working dir is a temporary copy that Ray may delete under the
    # driver once the job's trials end; sweep state and the driver's cwd must live elsewhere.
    in_job = in_ray_job()
    storage_root = Path.home() / ".adl/sweeps" if in_job else Path(".adl/sweeps").resolve()
    state: dict[str, Any] = {}
    verified: dict[str, bytes] = {}
    if resume is not None:  # everything comes from the saved state, not from a possibly edited YAML
        _, state, verified = read_state(resume, storage_root, trust_state, yes)
        sweep_path, overrides = state["sweep_file"], state["overrides"]
    assert sweep_path is not None
    # Absolute now, and the cwd taken now: under `adl submit` the job's working dir is unpacked
    # again when the driver's ray.init joins the cluster, and relative paths to the old directory
    # fail afterwards (seen as FileNotFoundError on the sweep file).
    path = Path(sweep_path).resolve()
    sweep, base = load_sweep(path, list(overrides), state or None)
    if state:
        _note_changed_files(path, list(overrides), state)
    sweep_text = state["sweep_text"] if state else path.read_text()
    check_devices(sweep, base)
    base = threads_for_trials(sweep, base)
    family = get_family(sweep.family)
    # A URI (s3://, gs://...) goes to Tune as it is; adl's state file lives beside Tune's, there too.
    remote = bool(sweep.storage_path and "://" in sweep.storage_path)
    storage = Path(sweep.storage_path).resolve() if sweep.storage_path and not remote else storage_root
    storage_str = str(sweep.storage_path).rstrip("/") if remote else str(storage)
    uri = resolve_tracking_uri(state.get("tracking_uri") or tracking_uri)
    check_reachable(uri)
    tune_path = state.get("tune_path") or f"{storage_str}/{sweep.name}"
    if not remote:
        check_writable(storage, "storage_path" if sweep.storage_path else "the sweep state folder")
        if (storage / str(sweep.name)).resolve().parent != storage.resolve():  # one folder; never climb out
            raise ConfigError(f"name: {sweep.name!r} would put the sweep's state outside {storage}")
    exp_dir = tune_path
    if resume is None and _state_exists(exp_dir, storage_str):
        raise ConfigError(
            f"sweep {sweep.name!r} already exists at {exp_dir}; resume it with "
            f"`adl sweep --resume {exp_dir if remote else sweep.name}` or set name: to something new"
        )
    return SweepPlan(
        sweep=sweep,
        base=base,
        sweep_path=path,
        sweep_text=sweep_text,
        overrides=list(overrides),
        metric=sweep.metric or family.metric,
        mode=sweep.mode or family.mode,
        uri=uri,
        experiment=state.get("experiment") or experiment or f"adl-{sweep.family}",
        exp_dir=exp_dir,
        storage=storage_str,
        tune_path=tune_path,
        driver_cwd=Path.cwd(),
        in_job=in_job,
        parent_run_id=state.get("parent_run_id"),
        verified=verified,
    )
