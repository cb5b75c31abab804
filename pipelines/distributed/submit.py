"""``adl submit``: the same ``adl`` command, run as a Ray job on a cluster.

The job is built here; the Jobs client is ``pipelines/distributed/jobs.py`` and the command line
``pipelines/cli/submit.py``. Everything that can be checked on the laptop is checked before
anything is uploaded, and raises :class:`ConfigError` (exit 2):

- the Jobs server answers at ``--address`` within seconds (``pipelines/distributed/jobs.py``);
- the MLflow tracking URI is absolute (a server URL, ``sqlite:////abs/path``, ``file:///abs``):
  the job runs in a temporary copy of the working directory, so a relative store would vanish;
- the working directory, less the excludes, fits under Ray's package limit
  (``pipelines/distributed/preflight.py``).

``adl ...`` entrypoints become ``python -m pipelines.cli ...``, so the cluster runs the uploaded
code (the working directory), not whatever ``adl`` happens to be installed there.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import ConfigError
from pipelines.distributed.preflight import check_working_dir
from pipelines.tracking.uri import check_cluster_tracking_uri

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


@dataclass(frozen=True)
class Submission:
    """Everything ``JobSubmissionClient.submit_job`` gets, built and checked before any upload."""

    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any]
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_resources: dict[str, float] = field(default_factory=dict)


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
