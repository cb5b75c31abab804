"""The Ray Jobs server, as ``adl submit`` and ``adl jobs`` talk to it: where it is, its token, a fast
health check, and a :class:`~ray.job_submission.JobSubmissionClient` on it.

Ray Jobs accept code from whoever reaches them: keep the dashboard on 127.0.0.1 and reach a remote
head through an SSH tunnel or ``kubectl port-forward``, never by exposing port 8265.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import ConfigError
from pipelines.http_probe import check_http_url, probe

if TYPE_CHECKING:
    from pipelines.distributed.submit import Submission

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def in_ray_job() -> bool:
    """Is this process the driver of a Ray job (``adl submit``)? Its working dir is then a temporary
    copy that Ray deletes after the job: nothing meant to last may be written under it."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))


def resolve_address(address: str | None) -> str:
    """``--address``, else ``$RAY_API_SERVER_ADDRESS``, else an http ``$RAY_ADDRESS``, else loopback."""
    env_addr = os.environ.get("RAY_ADDRESS", "")
    addr = address or os.environ.get("RAY_API_SERVER_ADDRESS") or (env_addr if "://" in env_addr else None)
    addr = addr or DEFAULT_ADDRESS
    if "://" not in addr:
        addr = f"http://{addr}"
    return check_http_url(addr.rstrip("/"), "--address", DEFAULT_ADDRESS)


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
        # Ray (~0.8 s): every run imports this module to read its job's id; only a laptop's client needs Ray
        from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled

        return get_auth_headers_if_auth_enabled({})
    return {"authorization": f"Bearer {token}"}


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """The Ray Jobs server answers ``/api/version`` within ``timeout_s`` (with the token, if any)."""
    answer = probe(f"{address}/api/version", timeout_s, auth_headers())
    if answer.status in (401, 403):
        raise ConfigError(
            f"the Ray Jobs server at {address} wants a token (HTTP {answer.status}): set RAY_AUTH_MODE=token "
            "and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token"
        )
    reason: Any = answer.reason
    if answer.answered:
        try:
            if 200 <= int(answer.status or 0) < 300:
                json.loads(answer.body or b"{}")
                return
            reason = f"HTTP {answer.status}; is this the Ray dashboard port (8265)?"
        except ValueError as e:
            reason = e
    raise ConfigError(
        f"cannot reach the Ray Jobs server at {address} ({reason}). Start a head with "
        "`ray start --head --dashboard-host=127.0.0.1` (needs ray[default]), or reach a remote one "
        "through a tunnel: `ssh -N -L 8265:127.0.0.1:8265 user@head` then --address "
        "http://127.0.0.1:8265 (never expose 8265 beyond loopback: whoever reaches it runs code)"
    )


def client(address: str | None) -> Any:
    """A JobSubmissionClient on a Jobs server that answered a fast health check."""
    from ray.job_submission import JobSubmissionClient  # Ray: as above, the laptop's side only

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


def exit_code(c: Any, job_id: str, status: str) -> int:
    """0 for a job that SUCCEEDED; for one that FAILED, its command's own exit code where Ray knows it
    (adl exits 2 for bad input), else 1; 1 for a STOPPED job."""
    if status == "SUCCEEDED":
        return 0
    if status == "FAILED":
        try:
            code = c.get_job_info(job_id).driver_exit_code
        except Exception:  # noqa: BLE001 - an older server: the status is all there is
            code = None
        if isinstance(code, int) and 0 < code < 256:
            return code
    return 1


def list_jobs(c: Any) -> list[tuple[str, str, str]]:
    """(submission id, status, entrypoint) per job, newest first."""
    jobs = sorted(c.list_jobs(), key=lambda j: j.start_time or 0, reverse=True)
    return [(str(j.submission_id or j.job_id), str(j.status.value), j.entrypoint) for j in jobs]


# The modules every adl job imports on the cluster (its driver and its actors).
REQUIRED_MODULES = (
    "torch",
    "gymnasium",
    "mlflow",
    "pyarrow",
    "numpy",
    "yaml",
    "tqdm",
    "matplotlib",
    "sklearn",
)
_PROBE = (
    "import importlib.util as u; "
    "print('ADL_MISSING=' + ','.join(m for m in {mods!r} if u.find_spec(m) is None))"
)


def missing_modules(c: Any, modules: tuple[str, ...], timeout_s: float = 60.0) -> list[str]:
    """Run a one-line probe job (no upload) with the cluster's own ``python``; return the modules of
    ``modules`` it cannot find. Raises ConfigError if the probe itself does not finish."""
    probe_id = f"adl-probe-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    code = _PROBE.format(mods=tuple(modules))
    c.submit_job(entrypoint=f"python -c {shlex.quote(code)}", submission_id=probe_id)
    t0 = time.time()
    while (status := str(c.get_job_status(probe_id).value)) not in TERMINAL:
        if time.time() - t0 > timeout_s:
            c.stop_job(probe_id)
            raise ConfigError(
                f"the package check on the cluster (job {probe_id}) did not finish in {timeout_s:.0f}s"
            )
        time.sleep(0.25)
    logs = c.get_job_logs(probe_id)
    line = next((ln for ln in logs.splitlines() if ln.startswith("ADL_MISSING=")), None)
    if status != "SUCCEEDED" or line is None:
        raise ConfigError(f"the package check on the cluster (job {probe_id}) {status}: {logs[-500:]}")
    return [m for m in line.split("=", 1)[1].split(",") if m]
