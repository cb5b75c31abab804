"""``adl submit`` and ``adl jobs``: the same ``adl`` command, run as a Ray job on a cluster.

A thin layer over :class:`ray.job_submission.JobSubmissionClient`. Everything that can be checked
on the laptop is checked before anything is uploaded, and raises :class:`ConfigError` (exit 2):

- the Jobs server answers at ``--address`` within seconds (Ray has no authentication: reach a
  remote one through an SSH tunnel or ``kubectl port-forward``, never by exposing port 8265);
- the MLflow tracking URI is absolute (a server URL, ``sqlite:////abs/path``, ``file:///abs``):
  the job runs in a temporary copy of the working directory, so a relative store would vanish;
- the working directory, less the excludes, fits under Ray's package limit.

``adl ...`` entrypoints become ``python -m pipelines.cli ...``, so the cluster runs the uploaded
code (the working directory), not whatever ``adl`` happens to be installed there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import ConfigError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Never uploaded: VCS, environments, local MLflow stores, sweep state, caches, data.
DEFAULT_EXCLUDES = (
    ".git",
    ".venv",
    "venv",
    "mlflow.db",
    "mlflow.db-*",
    "mlruns/",
    "mlartifacts/",
    ".adl/",
    "ray_results/",
    "data/",
    "__pycache__/",
    "*.pyc",
    "*.egg-info/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    "benchmarks/results/",
)
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class Submission:
    """Everything ``JobSubmissionClient.submit_job`` gets, built and checked before any upload."""

    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any]
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_resources: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Checks (all raise ConfigError)


def resolve_address(address: str | None) -> str:
    """``--address``, else ``$RAY_API_SERVER_ADDRESS``, else an http ``$RAY_ADDRESS``, else loopback."""
    env_addr = os.environ.get("RAY_ADDRESS", "")
    addr = address or os.environ.get("RAY_API_SERVER_ADDRESS") or (env_addr if "://" in env_addr else None)
    addr = addr or DEFAULT_ADDRESS
    if "://" not in addr:
        addr = f"http://{addr}"
    return addr.rstrip("/")


def auth_headers() -> dict[str, str]:
    """The cluster token as an HTTP header, read from ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``.

    Read here rather than through Ray's own loader: that one decides once per process whether token
    auth is on, and a process that touched Ray earlier without a token keeps sending none.
    """
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path and Path(path).is_file():
        token = Path(path).read_text().strip()
    if not token:
        from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled

        return get_auth_headers_if_auth_enabled({})
    return {"authorization": f"Bearer {token}"}


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """The Ray Jobs server answers ``/api/version`` within ``timeout_s`` (with the token, if any)."""
    request = urllib.request.Request(f"{address}/api/version", headers=auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            json.loads(r.read() or b"{}")
            return
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise ConfigError(
                f"the Ray Jobs server at {address} wants a token (HTTP {e.code}): set RAY_AUTH_MODE=token "
                "and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token"
            ) from None
        reason: Any = f"HTTP {e.code}; is this the Ray dashboard port (8265)?"
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        reason = getattr(e, "reason", e)
    raise ConfigError(
        f"cannot reach the Ray Jobs server at {address} ({reason}). Start a head with "
        "`ray start --head --dashboard-host=127.0.0.1` (needs ray[default]), or reach a remote one "
        "through a tunnel: `ssh -N -L 8265:127.0.0.1:8265 user@head` then --address "
        "http://127.0.0.1:8265 (never expose 8265 beyond loopback: whoever reaches it runs code)"
    )


def check_cluster_tracking_uri(uri: str) -> str:
    """A tracking URI that means the same thing inside a job as on the laptop, else ConfigError."""
    hint = (
        "the job runs in a temporary copy of the working directory on the cluster; use a server "
        "URL (http://HOST:5000) or an absolute path (sqlite:////abs/mlflow.db on a shared filesystem)"
    )
    if uri.startswith("sqlite://"):
        path = uri[len("sqlite://") :]
        if not path.startswith("//"):  # sqlite:///rel.db → "/rel.db"; sqlite:////abs.db → "//abs.db"
            raise ConfigError(f"tracking URI {uri}: relative sqlite path (or in-memory store); {hint}")
        return uri
    if uri.startswith("file:"):
        if not uri.startswith("file:///"):
            raise ConfigError(f"tracking URI {uri}: relative file store; {hint}")
        return uri
    if "://" not in uri and not uri.startswith(("databricks", "uc:")):
        raise ConfigError(f"tracking URI {uri}: a bare path is not a URI; {hint}")
    return uri


def working_dir_size(path: Path, excludes: Sequence[str]) -> int:
    """Bytes Ray would upload for ``path`` with ``excludes`` (plus .gitignore/.rayignore, as Ray does).

    Ray zips the working directory without compression, so the sum of file sizes is the package size
    to within the zip headers.
    """
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    total = 0

    def add(p: Path) -> None:
        nonlocal total
        if p.is_file():
            total += p.stat().st_size

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    quiet = logging.getLogger("adl.submit")  # Ray's own logger announces every ignore file at INFO
    _dir_travel(
        path, [_get_excludes(path, list(excludes))], add, include_gitignore=include_gitignore, logger=quiet
    )
    return total


def package_limit() -> int:
    """Ray's limit on one uploaded package (GCS gRPC message size, ``RAY_max_grpc_message_size``)."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    return int(GCS_STORAGE_MAX_SIZE)


def check_working_dir(path: Path, excludes: Sequence[str]) -> int:
    if not path.is_dir():
        raise ConfigError(f"--working-dir {path}: not a directory")
    size, limit = working_dir_size(path, excludes), package_limit()
    if size >= limit:
        raise ConfigError(
            f"working directory {path} is {size / 2**20:.1f} MiB after excludes, over Ray's "
            f"{limit / 2**20:.0f} MiB package limit; add --exclude PATTERN (or a .rayignore) for data "
            "and outputs, and read large data from shared storage instead"
        )
    return size


# ---------------------------------------------------------------------------------------------
# Building the submission


def entrypoint_for(command: Sequence[str]) -> str:
    """The shell entrypoint; ``adl ...`` runs the uploaded code as ``python -m pipelines.cli ...``."""
    args = list(command)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise ConfigError("adl submit needs a command after --, e.g. adl submit -- adl train qlearn")
    if args[0] == "adl":
        args = ["python", "-m", "pipelines.cli", *args[1:]]
    return shlex.join(args)


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def default_submission_id(command: Sequence[str]) -> str:
    words = [a for a in command if a not in ("--", "adl") and not a.startswith("-")][:2]
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(words).lower()).strip("-") or "job"
    return f"adl-{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def build_submission(
    command: Sequence[str],
    working_dir: str | Path = ".",
    tracking_uri: str | None = None,
    env: Mapping[str, str] | None = None,
    excludes: Sequence[str] = (),
    submission_id: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
) -> Submission:
    """Check everything that can be checked locally and build the job (no network)."""
    entrypoint = entrypoint_for(command)
    # Not RAY_CHDIR_TO_TRIAL_DIR: init_ray sets it in the driver's own runtime_env, and Ray refuses
    # a job whose runtime_env repeats a key of the driver's.
    env_vars = {"PYTHONUNBUFFERED": "1", **dict(env or {})}
    uri = tracking_uri or env_vars.get("MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        env_vars["MLFLOW_TRACKING_URI"] = check_cluster_tracking_uri(uri)
    else:
        print(
            "adl: warning: no --tracking-uri or MLFLOW_TRACKING_URI: runs go to a sqlite store inside "
            "the job's temporary working directory on the cluster",
            file=sys.stderr,
        )
    if (in_cmd := _flag_value(command, "--tracking-uri")) is not None:
        check_cluster_tracking_uri(in_cmd)
    wd = Path(working_dir).resolve()
    all_excludes = [*DEFAULT_EXCLUDES, *excludes]
    check_working_dir(wd, all_excludes)
    return Submission(
        entrypoint=entrypoint,
        submission_id=submission_id or default_submission_id(command),
        runtime_env={"working_dir": str(wd), "excludes": all_excludes, "env_vars": env_vars},
        entrypoint_num_cpus=num_cpus,
        entrypoint_num_gpus=num_gpus,
        entrypoint_resources=dict(resources or {}),
    )


# ---------------------------------------------------------------------------------------------
# Talking to the Jobs server


def client(address: str | None) -> Any:
    """A JobSubmissionClient on a Jobs server that answered a fast health check."""
    from ray.job_submission import JobSubmissionClient

    addr = resolve_address(address)
    check_address(addr)
    return JobSubmissionClient(addr, headers=auth_headers())


def submit(address: str | None, sub: Submission) -> tuple[Any, str]:
    c = client(address)
    job_id = c.submit_job(
        entrypoint=sub.entrypoint,
        submission_id=sub.submission_id,
        runtime_env=sub.runtime_env,
        entrypoint_num_cpus=sub.entrypoint_num_cpus,
        entrypoint_num_gpus=sub.entrypoint_num_gpus,
        entrypoint_resources=sub.entrypoint_resources or None,
        metadata={"adl.entrypoint": sub.entrypoint[:200]},
    )
    return c, job_id


def follow(c: Any, job_id: str, out: Any = None) -> str:
    """Stream the job's logs until it ends; returns its final status (SUCCEEDED, FAILED, STOPPED)."""
    out = out or sys.stdout

    async def tail() -> None:
        async for chunk in c.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())
    while (status := str(c.get_job_status(job_id).value)) not in TERMINAL:
        time.sleep(0.5)
    return status


def wait(c: Any, job_id: str, timeout_s: float = 600.0) -> str:
    t0 = time.time()
    while (status := str(c.get_job_status(job_id).value)) not in TERMINAL:
        if time.time() - t0 > timeout_s:
            return status
        time.sleep(0.5)
    return status


def list_jobs(c: Any) -> list[tuple[str, str, str]]:
    """(submission id, status, entrypoint) per job, newest first."""
    jobs = sorted(c.list_jobs(), key=lambda j: j.start_time or 0, reverse=True)
    return [(str(j.submission_id or j.job_id), str(j.status.value), j.entrypoint) for j in jobs]


# ---------------------------------------------------------------------------------------------
# CLI (registered in pipelines/cli.py)

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
    import argparse

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
    j.add_argument("--address", help=f"Ray Jobs server (default: {DEFAULT_ADDRESS})")
    jsub = j.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    jsub.add_parser("list", help="every job: id, status, entrypoint")
    for name, doc in (("status", "a job's status"), ("logs", "a job's logs"), ("stop", "stop a job")):
        a = jsub.add_parser(name, help=doc)
        a.add_argument("job_id", metavar="ID")
        if name == "logs":
            a.add_argument("--follow", action="store_true", help="stream until the job ends")


def cmd_submit(args: Any) -> int:
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
    addr = resolve_address(args.address)
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
    print(f"adl: job {job_id} {status}", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else 1


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
                status = follow(c, args.job_id)
                return 0 if status == "SUCCEEDED" else 1
            sys.stdout.write(c.get_job_logs(args.job_id))
        elif args.jobs_command == "stop":
            stopped = c.stop_job(args.job_id)
            print(f"adl: job {args.job_id} {'stopping' if stopped else 'was not running'}", file=sys.stderr)
    except RuntimeError as e:  # unknown job id
        raise ConfigError(f"job {args.job_id}: {e}") from None
    return 0
