"""Starting Ray in a background thread while the driver opens its MLflow run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from components.config import ConfigError
from pipelines.distributed import ray_runtime

REPO = Path(__file__).resolve().parents[2]


def test_an_error_of_the_background_start_is_raised_by_init_ray(monkeypatch):
    import ray

    def refuse(*_args, **_kwargs):
        raise ConfigError("num_cpus: refused")

    monkeypatch.setattr(ray_runtime, "_starting", None)
    monkeypatch.setattr(ray_runtime, "_init_ray", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_runtime.start_ray_in_background(None, 2)
    assert ray_runtime._starting is not None
    with pytest.raises(ConfigError, match="num_cpus: refused"):
        ray_runtime.init_ray()
    assert ray_runtime._starting is None  # a later init_ray starts afresh


def test_joining_a_cluster_is_left_to_init_ray(monkeypatch):
    """Inside a Ray job a join may unpack the working directory again: never from a thread."""
    import ray

    monkeypatch.setattr(ray_runtime, "_starting", None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_runtime.start_ray_in_background("10.0.0.1:6379", None)
    assert ray_runtime._starting is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    ray_runtime.start_ray_in_background(None, None)
    assert ray_runtime._starting is None


@pytest.mark.ray
def test_a_ray_started_in_a_thread_outlives_the_start():
    """Ray's GCS and raylet die with the thread that started them (a parent-death signal): the
    starting thread must stay alive, or the cluster is gone seconds after init returns."""
    script = textwrap.dedent(
        """
        import os, time
        import ray
        from pipelines.distributed.ray_runtime import init_ray, start_ray_in_background

        start_ray_in_background(None, 1)
        init_ray()
        time.sleep(3)

        @ray.remote
        def pid():
            return os.getpid()

        print("worker pid differs:", ray.get(pid.remote(), timeout=60) != os.getpid())
        ray.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "worker pid differs: True" in proc.stdout
    assert "SIGTERM handler is not set" not in proc.stderr  # Ray's off-main-thread warning is dropped
