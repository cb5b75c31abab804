"""The ``adl`` command line's arguments: every subcommand, its options and its help text."""

from __future__ import annotations

import argparse

from pipelines.cli.submit import add_parsers as add_submit_parsers
from pipelines.families import CONFIGS_DIR, FAMILIES, shipped_configs


def _family_epilog() -> str:
    lines = ["families:"]
    for name, spec in FAMILIES.items():
        lines.append(f"  {name:<8} {spec.doc}")
        for p in shipped_configs(name):
            lines.append(f"             configs/{p.relative_to(CONFIGS_DIR)}")
    lines.append("")
    lines.append("example: adl train qlearn --config configs/qlearn/frozenlake.yaml --set episodes=500")
    return "\n".join(lines)


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (usage error, exit 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; at least 1")
    return value


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI or server URL "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)",
    )
    p.add_argument("--experiment", help="MLflow experiment name (default: adl-<family>)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="adl",
        description="Distributed RL and generative training on Ray, tracked in MLflow.",
        epilog=_family_epilog(),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train one model of a family", epilog=_family_epilog(), formatter_class=fmt
    )
    train.add_argument(
        "family", choices=list(FAMILIES), metavar="FAMILY", help=f"one of: {', '.join(FAMILIES)}"
    )
    train.add_argument("--config", help="YAML config (default: the family's shipped default)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=1e-3 (repeatable)",
    )
    train.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    train.add_argument("--run-name", help="MLflow run name")
    train.add_argument(
        "--local", action="store_true", help="run every part in one process, without Ray (dqn)"
    )
    train.add_argument("--address", help="Ray cluster to join, e.g. auto (dqn; default: a local Ray)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--register",
        metavar="NAME",
        help="register the run's best model in the MLflow model registry as NAME",
    )
    train.add_argument(
        "--resume", metavar="RUN_ID", help="continue this MLflow run from its last checkpoint (dqn)"
    )
    _add_tracking_args(train)

    sweep = sub.add_parser("sweep", help="run a Ray Tune sweep; each trial is a child MLflow run")
    sweep.add_argument("--config", help="sweep YAML, e.g. configs/sweeps/qlearn_frozenlake.yaml")
    sweep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a sweep value, e.g. --set max_concurrent=1",
    )
    sweep.add_argument("--resume", metavar="NAME", help="resume an interrupted sweep by name (or its folder)")
    sweep.add_argument(
        "--trust-state",
        action="store_true",
        help="with --resume: sign the sweep's state as it is, when adl's signature is missing or stale "
        "(only if nobody else can write its folders: Tune unpickles it)",
    )
    sweep.add_argument(
        "--yes", action="store_true", help="with --trust-state: sign without asking (the files are listed)"
    )
    sweep.add_argument("--num-cpus", type=_positive, help="CPUs for a local Ray (default: all)")
    sweep.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    _add_tracking_args(sweep)

    add_submit_parsers(sub)  # submit, jobs

    replay = sub.add_parser("replay", help="work with a DQN run's replay checkpoint")
    replay_sub = replay.add_subparsers(dest="replay_command", required=True, metavar="ACTION")
    export = replay_sub.add_parser("export", help="write a run's checkpointed replay as a Parquet table")
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument("--out", required=True, help="the Parquet file to write")
    export.add_argument("--checkpoint-dir", help="checkpoint folder (default: from the run's tag)")
    _add_tracking_args(export)

    show = sub.add_parser("config", help="print every config key of a family with its type, default and doc")
    show.add_argument("family", choices=list(FAMILIES), metavar="FAMILY")
    return parser
