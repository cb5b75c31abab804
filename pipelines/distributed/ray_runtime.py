"""Starting or joining Ray with safe defaults: a local Ray listens on 127.0.0.1 only, keeps its
sessions in a private temp dir and its token in a 0600 file (``ray_private.py``); no dashboard
unless asked.

Ray (~0.8 s of import) is imported inside the functions that start, join or stop it: the DQN driver
asks :func:`joins_cluster` before it knows whether it needs Ray at all."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from components.config import ConfigError


class _RayStart(threading.Thread):
    """Runs :func:`_init_ray` and then stays alive: Ray starts its GCS and raylet with a parent-death
    signal, which Linux sends when the *thread* that started them ends, not the process."""

    def __init__(self, num_cpus: int | None) -> None:
        super().__init__(name="adl-ray-start", daemon=True)
        self.num_cpus = num_cpus
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = _init_ray(num_cpus=self.num_cpus)  # a local start: joins stay in init_ray
        except BaseException as e:  # handed to the thread that waits for it
            self.error = e
        finally:
            self.done.set()
        threading.Event().wait()  # until the process exits (after Ray's own atexit shutdown)

    def get(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


_starting: _RayStart | None = None  # a start begun by start_ray_in_background


def _not_the_sigterm_warning(record: Any) -> bool:
    return not str(record.msg).startswith("SIGTERM handler is not set")


def joins_cluster(address: str | None) -> bool:
    """Does ``init_ray(address)`` join a running cluster (rather than start a Ray of its own)?"""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def start_ray_in_background(address: str | None = None, num_cpus: int | None = None) -> None:
    """Begin :func:`init_ray` in a thread; the next ``init_ray`` call waits for it (and raises its error).

    Starting a local Ray is ~4 s in which this process mostly waits for Ray's own processes, and
    opening an MLflow run is ~3 s of Python in this one: on 2 cores, side by side they leave no
    core idle. ``ray`` is imported here, in the calling thread, because two threads importing big
    packages at once mostly wait for each other's import locks.

    Joining a cluster (``address`` or ``$RAY_ADDRESS``) is left to ``init_ray``: it takes well under
    a second, and inside a Ray job it may unpack the job's working directory again, which pulls the
    current directory from under the main thread while it resolves paths.
    """
    global _starting

    import ray  # see the module's note

    if address or os.environ.get("RAY_ADDRESS"):
        return

    # Ray warns that it cannot set its SIGTERM handler off the main thread; adl sets its own.
    logging.getLogger("ray._private.worker").addFilter(_not_the_sigterm_warning)
    if _starting is None and not ray.is_initialized():
        _starting = _RayStart(num_cpus)
        _starting.start()


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool = False,
    **kwargs: Any,
) -> Any:
    """Join ``address`` (or ``$RAY_ADDRESS``, as under ``ray job submit``), else start a local Ray.

    A local Ray binds to 127.0.0.1 and starts its own instance (``address="local"``) rather than
    joining whatever else runs on this host. Trials keep the driver's working directory, so
    relative paths in configs mean the same thing in every trial. A start begun by
    :func:`start_ray_in_background` is waited for instead.
    """
    global _starting
    if _starting is not None:
        started, _starting = _starting, None
        return started.get()
    return _init_ray(address, num_cpus, num_gpus, dashboard, **kwargs)


def check_ray_address(address: str, where: str = "--address", timeout_s: float = 3.0) -> None:
    """A Ray cluster address adl can join, refused (ConfigError) before ``ray.init``: that hangs for
    minutes where nothing listens and raises a bare ValueError for a malformed one."""
    if address in ("auto", "local"):
        return
    if address.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where} {address}: that is a URL (the Jobs server's, for `adl submit --address`); to join "
            f"a cluster give its GCS address HOST:PORT (`ray start --head` prints it; port 6379 by "
            f"default), ray://HOST:PORT, or auto on one of its nodes"
        )
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{where} {address!r}: not HOST:PORT; allowed: the cluster's GCS address (e.g. "
            f"10.0.0.10:6379), ray://HOST:PORT, or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise ConfigError(
            f"{where} {address}: nothing answers there ({e.strerror or e}); is the cluster's head running "
            f"(`ray start --head` prints its address)? Without --address, adl starts a local Ray"
        ) from None


def _init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool = False,
    **kwargs: Any,
) -> Any:
    import ray  # see the module's note

    target = address or os.environ.get("RAY_ADDRESS")
    if target:  # a bad address is refused even where this process runs a Ray already (tests do)
        check_ray_address(target, "--address" if address else "$RAY_ADDRESS")
    if ray.is_initialized():
        return ray.get_runtime_context()
    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    os.environ.update(env)
    try:
        if target:
            ctx = ray.init(address=target, runtime_env={"env_vars": env}, log_to_driver=True, **kwargs)
            _leave_job_working_dir()
            return ctx
        return _start_local(num_cpus, num_gpus, dashboard, env, **kwargs)
    except ConnectionError as e:
        raise ConfigError(f"cannot connect to the Ray cluster at {target}: {e}") from None


def _start_local(
    num_cpus: int | None, num_gpus: int | None, dashboard: bool, env: dict[str, str], **kwargs: Any
) -> Any:
    """A Ray of this process's own, reachable from this host only (``ray_private.py`` says how)."""
    import ray  # see the module's note

    from pipelines.distributed.ray_private import (  # Ray's private modules: as `import ray`
        LOOPBACK,
        loopback_only,
        own_process_group,
        private_temp_dir,
        private_token_file,
    )

    private_token_file()
    with loopback_only(), own_process_group():
        ctx = ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            num_gpus=num_gpus,
            include_dashboard=dashboard,
            dashboard_host=LOOPBACK,
            runtime_env={"env_vars": env},
            _node_ip_address=LOOPBACK,
            _temp_dir=private_temp_dir(),
            **kwargs,
        )
    private_token_file()  # Ray wrote it itself (RAY_AUTH_TOKEN_PATH unset and ~/.ray/ missing a token)
    return ctx


def _leave_job_working_dir() -> None:
    """Inside a Ray job, joining the cluster makes Ray unpack the job's working directory again (at
    once, or when the first worker starts), deleting the folder this process stands in, and anything
    that reads the cwd later fails (``torch._dynamo`` does on import). Step out to the home folder:
    callers resolve their relative paths before they join (``adl sweep`` then moves to its storage)."""
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        home = Path.home()
        os.chdir(home if home.is_dir() else tempfile.gettempdir())


_stopping: threading.Thread | None = None  # a shutdown begun by shutdown_in_background


def shutdown_in_background() -> None:
    """Stop this process's Ray (or leave the cluster it joined) in a thread, while the caller does
    its last logging: a local Ray takes ~1.5 s to stop on 2 cores, which the user would otherwise wait
    for after the result is known. :func:`wait_for_shutdown` joins it."""
    global _stopping
    import ray  # see the module's note

    if _stopping is None and ray.is_initialized():
        _stopping = threading.Thread(target=ray.shutdown, name="adl-ray-shutdown", daemon=True)
        _stopping.start()


def wait_for_shutdown(timeout_s: float = 60.0) -> None:
    global _stopping
    if _stopping is not None:
        _stopping.join(timeout_s)
        _stopping = None


def ray_size() -> tuple[float, float]:
    """(CPUs, GPUs) of the Ray this process has started or joined."""
    import ray  # see the module's note

    have = ray.cluster_resources()
    return float(have.get("CPU", 0.0)), float(have.get("GPU", 0.0))
