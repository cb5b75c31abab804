"""The ``adl submit`` and ``adl jobs`` command lines (registered in ``pipelines/cli/main.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from components.config import ConfigError
from pipelines.distributed.jobs import (
    DEFAULT_ADDRESS,
    REQUIRED_MODULES,
    client,
    exit_code,
    follow,
    list_jobs,
    missing_modules,
    resolve_address,
    submit,
)
from pipelines.distributed.submit import build_submission, parse_env

EPILOG = """\
examples:
  adl submit --address http://127.0.0.1:8265 --tracking-uri http://127.0.0.1:5000 --follow \\
      -- adl train dqn --config configs/dqn/cartpole.yaml
  adl submit --follow -- adl sweep --config configs/sweeps/qlearn_frozenlake.yaml
  adl jobs list;  adl jobs logs ID --follow;  adl jobs stop ID
  (equivalents: ray job submit/list/logs/stop --address http://127.0.0.1:8265)

Ray has no authentication: keep the dashboard on 127.0.0.1 and reach a remote head with
  ssh -N -L 8265:127.0.0.1:8265 -L 5000:127.0.0.1:5000 user@head
  kubectl port-forward svc/adl-head-svc 8265:8265
"""


def add_parsers(sub: Any) -> None:
    """Register ``submit`` and ``jobs`` on the ``adl`` subparsers."""
    p = sub.add_parser(
        "submit",
        help="run an adl command as a Ray job on a cluster",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--address", help=f"Ray Jobs server (default: $RAY_API_SERVER_ADDRESS, else {DEFAULT_ADDRESS})"
    )
    p.add_argument("--working-dir", default=".", help="folder uploaded as the job's working dir (default: .)")
    p.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN", help="also leave out (gitignore syntax)"
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI for the job, absolute or a server URL (default: $MLFLOW_TRACKING_URI)",
    )
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="job env var (repeatable)")
    p.add_argument("--submission-id", help="job id (default: adl-<command>-<time>-<random>)")
    p.add_argument("--entrypoint-num-cpus", type=float, help="CPUs reserved for the driver")
    p.add_argument("--entrypoint-num-gpus", type=float, help="GPUs reserved for the driver")
    p.add_argument(
        "--entrypoint-resources",
        metavar="JSON",
        help="custom resources for the driver, e.g. '{\"worker_node\": 1}'",
    )
    p.add_argument("--follow", action="store_true", help="stream logs; exit 0 if the job SUCCEEDED, else 1")
    p.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="MODULE",
        help="also check that the cluster's python imports MODULE (adl's own needs are always checked)",
    )
    p.add_argument(
        "--no-package-check",
        action="store_true",
        help="skip the check (a probe job, ~2 s) that the cluster's python has the packages the job needs",
    )
    p.add_argument(
        "job_command",
        metavar="COMMAND",
        nargs=argparse.REMAINDER,
        help="-- adl train|sweep ... (the command to run)",
    )

    j = sub.add_parser(
        "jobs",
        help="list, show logs of, or stop Ray jobs",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    address_help = f"Ray Jobs server (default: $RAY_API_SERVER_ADDRESS, else {DEFAULT_ADDRESS})"
    j.add_argument("--address", help=address_help)
    jsub = j.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    for name, doc in (
        ("list", "every job: id, status, entrypoint"),
        ("status", "a job's status"),
        ("logs", "a job's logs"),
        ("stop", "stop a job"),
    ):
        a = jsub.add_parser(name, help=doc)
        # Accepted after the action too (adl jobs list --address X); SUPPRESS keeps one given before it.
        a.add_argument("--address", default=argparse.SUPPRESS, help=address_help)
        if name == "list":
            continue
        a.add_argument("job_id", metavar="ID")
        if name == "logs":
            a.add_argument("--follow", action="store_true", help="stream until the job ends")


def cmd_submit(args: Any) -> int:
    addr = resolve_address(args.address)  # a malformed URL is bad input before anything is packed
    try:
        resources = json.loads(args.entrypoint_resources) if args.entrypoint_resources else None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--entrypoint-resources: not JSON ({e})") from None
    sub = build_submission(
        args.job_command,
        working_dir=args.working_dir,
        tracking_uri=args.tracking_uri,
        env=parse_env(args.env),
        excludes=args.exclude,
        submission_id=args.submission_id,
        num_cpus=args.entrypoint_num_cpus,
        num_gpus=args.entrypoint_num_gpus,
        resources=resources,
    )
    if not args.no_package_check:
        modules = (*REQUIRED_MODULES, *args.require)
        if missing := missing_modules(client(addr), modules):
            raise ConfigError(
                f"the cluster at {addr} cannot import {', '.join(missing)} in the python that runs jobs; "
                f"install them on the cluster's nodes (the project's pins: pyproject.toml), or use an "
                f"image that has them (docker/); nothing was uploaded"
            )
    try:
        c, job_id = submit(addr, sub)
    except RuntimeError as e:  # the Jobs server refused it (duplicate id, bad runtime_env, ...)
        raise ConfigError(f"the Ray Jobs server at {addr} refused the job: {e}") from None
    print(f"adl: submitted job {job_id} to {addr}: {sub.entrypoint}", file=sys.stderr)
    if not args.follow:
        print(f"adl: follow it with: adl jobs --address {addr} logs {job_id} --follow", file=sys.stderr)
        return 0
    try:
        status = follow(c, job_id)
    except KeyboardInterrupt:
        print(
            f"\nadl: stopped following; the job goes on. Stop it with: adl jobs stop {job_id}",
            file=sys.stderr,
        )
        raise
    return _ended(c, job_id, status)


def _ended(c: Any, job_id: str, status: str) -> int:
    """Say how the job ended; exit as its command did (2 for a refused input), 1 if it was stopped."""
    code = exit_code(c, job_id, status)
    said = f" (its command exited {code})" if status == "FAILED" and code not in (0, 1) else ""
    print(f"adl: job {job_id} {status}{said}", file=sys.stderr)
    return code


def cmd_jobs(args: Any) -> int:
    c = client(args.address)
    if args.jobs_command == "list":
        for job_id, status, entrypoint in list_jobs(c):
            print(f"{job_id:<44} {status:<10} {entrypoint}")
        return 0
    try:
        if args.jobs_command == "status":
            print(c.get_job_status(args.job_id).value)
        elif args.jobs_command == "logs":
            if args.follow:
                return _ended(c, args.job_id, follow(c, args.job_id))
            sys.stdout.write(c.get_job_logs(args.job_id))
        elif args.jobs_command == "stop":
            stopped = c.stop_job(args.job_id)
            print(f"adl: job {args.job_id} {'stopping' if stopped else 'was not running'}", file=sys.stderr)
    except RuntimeError as e:  # unknown job id
        raise ConfigError(f"job {args.job_id}: {e}") from None
    return 0
