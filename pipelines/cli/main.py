"""The ``adl`` command line.

Exit codes: 0 success, 1 failure during training, 2 bad input (config, env id, tracking URI,
checkpoint, unsigned sweep state), with the message on stderr and no traceback. 130 after Ctrl-C,
143 after SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from components.config import ConfigError, describe, load
from pipelines.cli import submit
from pipelines.cli.args import build_parser
from pipelines.families import CONFIGS_DIR, FAMILIES, family_spec, get_family
from pipelines.tracking.lookups import run_info
from pipelines.tracking.uri import TrackingError, check_reachable, resolve_tracking_uri

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _process_start() -> float:
    """When this process was created (the moment the user pressed enter), else now."""
    try:
        return float(psutil.Process().create_time())
    except Exception:  # no psutil, or a platform it cannot read
        return time.time()


LAUNCHED = _process_start()  # `adl train`'s clock: "reached ... after 14.3s" counts from the launch


@dataclass
class TrainContext:
    """What every family's ``train`` gets besides its config: where to log and how to show it."""

    config_name: str
    tracking_uri: str  # resolved and checked reachable
    experiment: str
    run_name: str | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = LAUNCHED  # when the command started


def _resolve_config_path(family: str, path: str | None) -> Path:
    if path is not None:
        return Path(path)
    return CONFIGS_DIR / family_spec(family).default_config


def train_config(args: argparse.Namespace) -> tuple[Path, Any]:
    """The config ``adl train`` would run with (file, ``--set``, ``--seed``, ``--local``, ``--address``),
    validated; ConfigError otherwise. Nothing heavy is imported."""

    spec = family_spec(args.family)
    config_cls = spec.config_cls()  # light: the config is checked before torch, Ray or MLflow load
    cfg_path = _resolve_config_path(args.family, args.config)
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for flag, key, value in (
        ("--local", "local", "true" if args.local else None),
        ("--address", "address", args.address),
    ):
        if value is None:
            continue
        if key not in fields:
            raise ConfigError(f"{flag} does not apply to {args.family}; it runs in one process")
        overrides.append(f"{key}={value}")
    cfg = load(config_cls, cfg_path, overrides)
    if args.resume and not spec.resumable:
        raise ConfigError(f"--resume does not apply to {args.family}")
    if args.register and not spec.networks:
        raise ConfigError(
            f"--register registers a trained network in MLflow's model registry, and {args.family} learns "
            f"none (its table is logged as an artifact); allowed with: "
            f"{', '.join(n for n, s in FAMILIES.items() if s.networks)}"
        )
    return cfg_path, cfg


def cmd_train(args: argparse.Namespace) -> int:

    cfg_path, cfg = train_config(args)
    uri = resolve_tracking_uri(args.tracking_uri)
    check_reachable(uri)
    extra: dict[str, Any] = {"register": args.register} if args.register else {}
    if args.resume:  # a made-up id is refused before torch or Ray load
        extra |= {"resume": args.resume, "resume_info": run_info(uri, args.resume)}
    ctx = TrainContext(
        config_name=cfg_path.stem,
        tracking_uri=uri,
        experiment=args.experiment or f"adl-{args.family}",
        run_name=args.run_name,
        progress=not args.no_progress,
        extra=extra,
    )
    return get_family(args.family).run(cfg, ctx)


def cmd_sweep(args: argparse.Namespace) -> int:
    from pipelines.sweep.run import run_sweep  # the sweep's modules load for `adl sweep` only

    if args.config is None and args.resume is None:
        raise ConfigError("adl sweep needs --config SWEEP.yaml (or --resume NAME)")
    if args.trust_state and args.resume is None:
        raise ConfigError("--trust-state goes with --resume NAME")
    if args.yes and not args.trust_state:
        raise ConfigError("--yes confirms --trust-state; it goes with --resume NAME --trust-state")
    return run_sweep(
        args.config,
        args.overrides,
        args.tracking_uri,
        args.experiment,
        resume=args.resume,
        num_cpus=args.num_cpus,
        address=args.address,
        trust_state=args.trust_state,
        yes=args.yes,
    )


def cmd_config(args: argparse.Namespace) -> int:
    for key, tp, default, doc in describe(family_spec(args.family).config_cls()):
        print(f"{key:<32} {tp:<28} {default!r:<14} {doc}")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from pipelines.dqn.replay_export import export_run_replay  # pyarrow and torch: only this command

    return export_run_replay(args.run_id, args.out, args.tracking_uri, args.checkpoint_dir)


def cmd_submit(args: argparse.Namespace) -> int:
    return submit.cmd_submit(args)


def cmd_jobs(args: argparse.Namespace) -> int:
    return submit.cmd_jobs(args)


COMMANDS = {
    "train": cmd_train,
    "sweep": cmd_sweep,
    "config": cmd_config,
    "replay": cmd_replay,
    "submit": cmd_submit,
    "jobs": cmd_jobs,
}


_exit_code = EXIT_OK


def _exit_now() -> None:
    """The last exit handler: every other one (Ray's shutdown, MLflow's, logging's) has run, and
    stdout/stderr are flushed; skip the interpreter's teardown of torch, MLflow and Ray (~3 s on 2
    cores after a DQN run) and leave with the command's exit code."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`adl config dqn | head`)
            stream.flush()
    os._exit(_exit_code)


def entry() -> None:
    """The ``adl`` command: :func:`main`, then out as soon as everything is written."""
    global _exit_code
    atexit.register(_exit_now)  # registered first, so it runs after every other exit handler
    try:
        _exit_code = main()
    except SystemExit as e:  # argparse: --help, usage errors
        _exit_code = e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_FAILED
        raise
    except BaseException:  # a crash: its traceback is printed, the exit code is 1
        _exit_code = EXIT_FAILED
        raise
    sys.exit(_exit_code)


def main(argv: Sequence[str] | None = None) -> int:

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, TrackingError) as e:
        print(f"adl: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("adl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `adl config dqn | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    entry()
