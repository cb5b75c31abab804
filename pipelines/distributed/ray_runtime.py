"""Starting or joining Ray with safe defaults (loopback only, no dashboard unless asked)."""

from __future__ import annotations

import os
from typing import Any

from components.config import ConfigError


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
    relative paths in configs mean the same thing in every trial.
    """
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    os.environ.update(env)
    target = address or os.environ.get("RAY_ADDRESS")
    try:
        if target:
            return ray.init(address=target, runtime_env={"env_vars": env}, log_to_driver=True, **kwargs)
        return ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            num_gpus=num_gpus,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": env},
            **kwargs,
        )
    except ConnectionError as e:
        raise ConfigError(f"cannot connect to the Ray cluster at {target}: {e}") from None


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))
