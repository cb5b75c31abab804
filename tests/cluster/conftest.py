"""The multi-host cluster (``cluster.py``), started once for every test of this folder, and what the
tests do on it as a user on a laptop would: ``adl submit`` in this process, MLflow read over HTTP,
S3 read with boto3.

Needs root for network namespaces (CI runs as root); elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli.main import main
from tests.cluster.cluster import BUCKET, MultiHostCluster, wait_for
from tests.cluster.hosts import unavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")  # up for this folder's tests only, not the rest of the suite
def cluster(tmp_path_factory) -> Iterator[MultiHostCluster]:
    why = unavailable()
    if why is not None:
        pytest.skip(f"the multi-host cluster needs network namespaces: {why}")
    c = MultiHostCluster(tmp_path_factory.mktemp("cluster"))
    try:
        t0 = time.time()
        c.start()
        c.record("cluster start", seconds=round(time.time() - t0, 1))
        yield c
    finally:
        c.stop()
        if out := os.environ.get("ADL_CLUSTER_FIGURES"):  # the figures docs/cluster.md shows
            Path(out).write_text(json.dumps(c.figures, indent=1))


@pytest.fixture
def hosts(cluster: MultiHostCluster) -> MultiHostCluster:
    """The cluster with every worker up and MLflow answering (an earlier test may have killed them)."""
    cluster.heal()
    return cluster


def submit(
    c: MultiHostCluster, sub_id: str, *command: str, extra: tuple[str, ...] = (), follow: bool = True
) -> int:
    """``adl submit`` from the laptop: the repo uploaded, MLflow at the head's server."""
    argv = ["submit", "--address", c.jobs, "--working-dir", str(REPO), "--tracking-uri", c.mlflow]
    argv += ["--submission-id", sub_id, *extra, *(["--follow"] if follow else []), "--", *command]
    return main(argv)


def job_client(c: MultiHostCluster) -> Any:
    from ray.job_submission import JobSubmissionClient

    from pipelines.distributed.jobs import auth_headers

    return JobSubmissionClient(c.jobs, headers=auth_headers())


def job_status(c: MultiHostCluster, sub_id: str) -> str:
    return str(job_client(c).get_job_status(sub_id).value)


def wait_job(c: MultiHostCluster, sub_id: str, timeout_s: float) -> str:
    t0 = time.time()
    while (status := job_status(c, sub_id)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.time() - t0 < timeout_s, f"job {sub_id} still {status} after {timeout_s:.0f}s"
        time.sleep(1)
    return status


def s3_client(c: MultiHostCluster) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=c.s3_endpoint,
        aws_access_key_id=c.s3_key,
        aws_secret_access_key=c.s3_secret,
        region_name="us-east-1",
    )


def s3_keys(c: MultiHostCluster, prefix: str, bucket: str = BUCKET) -> list[str]:
    keys: list[str] = []
    for page in s3_client(c).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def s3_text(c: MultiHostCluster, key: str, bucket: str = BUCKET) -> str:
    return str(s3_client(c).get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def mlflow_client(c: MultiHostCluster) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(c.mlflow)


def runs_of(c: MultiHostCluster, experiment: str) -> list[Any]:
    client = mlflow_client(c)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else list(client.search_runs([exp.experiment_id]))


def sweep_runs(c: MultiHostCluster, experiment: str) -> tuple[Any, list[Any]]:
    runs = runs_of(c, experiment)
    parents = [r for r in runs if r.data.tags.get("adl.kind") == "sweep"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    return parent, children


def history(c: MultiHostCluster, run_id: str, key: str) -> list[Any]:
    return list(mlflow_client(c).get_metric_history(run_id, key))


def mean_rate(c: MultiHostCluster, run_id: str, start_ms: float, end_ms: float) -> float:
    """Mean env steps/s a DQN run logged between two wall-clock times (ms)."""
    rates = [m.value for m in history(c, run_id, "train/env_steps_per_s") if start_ms <= m.timestamp < end_ms]
    return round(sum(rates) / len(rates)) if rates else 0.0


def wait_for_run(c: MultiHostCluster, experiment: str, timeout_s: float, where: Any = None) -> Any:
    """The first run of ``experiment`` for which ``where(run)`` holds (any run if None)."""

    def found() -> Any:
        runs = [r for r in runs_of(c, experiment) if where is None or where(r)]
        assert runs
        return runs[0]

    return wait_for(found, timeout_s, f"a run in {experiment!r}")
