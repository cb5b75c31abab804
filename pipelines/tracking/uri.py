"""Tracking URIs: which store a run goes to, whether it is there, and how to look at it.

No MLflow here: this is what the CLI checks before anything heavy is imported or started.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from components.config import ConfigError
from pipelines.http_probe import probe

_VERSION = re.compile(r"\d+\.\d+")


class TrackingError(RuntimeError):
    """The tracking store cannot be used (unreachable server, bad URI)."""


def resolve_tracking_uri(uri: str | None = None, base_dir: str | Path | None = None) -> str:
    """The URI to use: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    Relative sqlite and file paths are made absolute: Tune trials change directory, and a relative
    store would silently split a sweep across folders.
    """
    base = Path(base_dir or os.getcwd()).resolve()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if not path.startswith("/"):
            uri = f"sqlite:///{(base / path).resolve()}"
    elif uri.startswith("file:") or "://" not in uri:
        path = uri[len("file:") :] if uri.startswith("file:") else uri
        path = path[2:] if path.startswith("///") else path  # file:///abs -> /abs
        uri = Path(path if Path(path).is_absolute() else base / path).resolve().as_uri()
    return uri


# The stores MLflow's client knows (its tracking-store registry), by URI scheme.
SCHEMES = ("http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")


def _check_folder(uri: str, folder: Path) -> None:
    """The local store's folder exists (or can be made) and takes a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_file = folder / f".adl-write-probe-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as e:
        raise TrackingError(
            f"tracking URI {uri}: cannot write to {folder} ({e.strerror or e}); use a folder you can write, "
            f"or a server URL"
        ) from None


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when a tracking server is not there, and
    refuse a store MLflow does not know or cannot write, before any run is opened."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in SCHEMES:
        raise TrackingError(
            f"tracking URI {uri}: unknown scheme {scheme!r}; allowed: http(s)://HOST:PORT (a server), "
            f"sqlite:///ABSOLUTE/PATH.db, a folder (file:///...), or a database URL "
            f"(postgresql://, mysql://, mssql://)"
        )
    if not uri.startswith(("http://", "https://")):
        if uri.startswith("sqlite:///"):
            _check_folder(uri, Path(uri[len("sqlite:///") :]).parent)
        elif uri.startswith("file:"):
            if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
                raise TrackingError(
                    f"tracking URI {uri}: a folder store, which MLflow 3 only opens with "
                    f"MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///ABSOLUTE/PATH.db (the default is "
                    f"sqlite:///$PWD/mlflow.db) or a server URL"
                )
            _check_folder(uri, Path(uri[len("file://") :] if uri.startswith("file://") else uri[5:]))
        return
    base = uri.rstrip("/")
    health = probe(base + "/health", timeout_s)
    if not health.answered:
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({health.reason}). Start one with "
            f"`mlflow server --host 127.0.0.1 --port 5000`, or drop --tracking-uri / "
            f"MLFLOW_TRACKING_URI to use the local store sqlite:///$PWD/mlflow.db"
        )
    if health.status in (401, 403):  # an authenticating proxy: MLflow's client brings the credentials
        return
    version = probe(base + "/version", timeout_s) if health.status == 200 else health
    if version.status != 200 or not _VERSION.match(version.body.decode(errors="replace").strip()):
        raise TrackingError(
            f"{uri} answers over HTTP but is not an MLflow tracking server (GET /health: HTTP "
            f"{health.status}, GET /version: HTTP {version.status}); check the host and port of "
            f"--tracking-uri / MLFLOW_TRACKING_URI"
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


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` (ui_command, `make ui`) serves


def ui_command(uri: str) -> str:
    """The one command that opens the MLflow UI on this store, bound to 127.0.0.1."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    return f"{mlflow_bin} ui --host 127.0.0.1 --port 5000 --backend-store-uri {uri}"


def run_page(experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI, after the server's address.

    MLflow 3.17's UI shows an experiment as GenAI or model training by the browser's workflow
    switch (kept in its local storage, GenAI until changed), not by the experiment; the
    ``workflowType`` parameter sets it for this visit, and the UI keeps it on the links it follows.
    """
    return f"/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def where_to_look(
    run_id: str | None, experiment: str, uri: str, experiment_id: str | None = None, what: str = "run"
) -> str:
    """The closing lines of every command: the run (a sweep's parent), its page's address, and for
    a local store the command that serves the UI first."""
    lines = [f"adl: {what} id {run_id} (experiment {experiment!r})"]
    page = run_page(experiment_id, run_id) if experiment_id and run_id else ""
    if uri.startswith(("http://", "https://")):
        lines.append(f"adl: open {uri.rstrip('/')}{page}")
    else:
        lines.append(f"adl: look at it with: {ui_command(uri)}")
        if page:
            lines.append(f"adl: then open {UI_ADDRESS}{page}")
    return "\n".join(lines)
