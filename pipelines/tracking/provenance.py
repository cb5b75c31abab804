"""Where a run came from, as MLflow's own tags (so the UI's User, Source and Version columns fill)
and adl's: who ran it, which command, which commit (and whether the tree had changes), which Ray
job submitted it. No MLflow import: these are plain strings."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ADL_VERSION = "0.1.0"
REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def ray_job_id() -> str | None:
    """The Ray job's submission id when this process is a job's driver (``adl submit``)."""
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return None
    try:
        return str(json.loads(raw).get("metadata", {}).get("job_submission_id")) or None
    except (ValueError, AttributeError):
        return None


def command_line() -> str:
    """What the user typed, as ``adl ...`` (``python -m pipelines.cli`` reads the same)."""
    args = sys.argv[1:] if Path(sys.argv[0]).name in ("adl", "main.py", "__main__.py") else sys.argv
    return shlex.join(["adl", *args])[:500]


def source_name() -> str:
    """A short source for MLflow's Source column, which shows the last path segment of it:
    ``adl train dqn cartpole`` (the command, the family, the config's name), no slashes."""
    args = sys.argv[1:] if Path(sys.argv[0]).name in ("adl", "main.py", "__main__.py") else sys.argv[:1]
    words = ["adl"]
    for a in args:
        if a.startswith("-"):
            break
        words.append(Path(a).name)
    if "--config" in args[:-1]:
        words.append(Path(args[args.index("--config") + 1]).stem)
    return " ".join(words)[:200]


def run_tags() -> dict[str, str]:
    """The tags every new run gets."""
    tags = {
        "adl.version": ADL_VERSION,
        "mlflow.source.name": source_name(),
        "adl.command": command_line(),
        "mlflow.source.type": "JOB" if ray_job_id() else "LOCAL",
    }
    with contextlib.suppress(KeyError, OSError):  # no passwd entry for this uid (some containers)
        tags["mlflow.user"] = getpass.getuser()
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        tags["adl.git_dirty"] = "unknown" if status is None else str(bool(status)).lower()
        if branch := _git("rev-parse", "--abbrev-ref", "HEAD"):
            tags["mlflow.source.git.branch"] = branch
    if job := ray_job_id():
        tags["adl.ray_job_id"] = job
    return tags
