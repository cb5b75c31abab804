"""Shared fixtures: a temporary MLflow store per test, a real local Ray started once per session, and
adl's signing key kept in a folder of the session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session", autouse=True)
def adl_config_dir(tmp_path_factory):
    """adl's signing key in a private folder of this test session, never the user's ~/.config/adl
    (subprocesses inherit it)."""
    folder = tmp_path_factory.mktemp("adl-config")
    folder.chmod(0o700)
    os.environ["ADL_CONFIG_DIR"] = str(folder)
    return folder


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh sqlite MLflow store (absolute path) for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs, no dashboard, started the way adl starts one (bound to 127.0.0.1,
    its own temp folder); shut down at the end of the session."""
    import ray

    from pipelines.distributed.ray_runtime import init_ray

    init_ray(num_cpus=2, dashboard=False)
    yield ray
    ray.shutdown()
