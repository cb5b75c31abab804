"""A Ray cluster on hosts of their own (``hosts.py``), as a user meets one: a head (0 CPUs: drivers and
trials go to the workers) with the Jobs server and an MLflow server whose artifacts go to S3, two
worker hosts of 1 CPU each, an S3 server (SeaweedFS) on a storage host, token authentication on, and
this machine as the user's laptop on the same network.

Every node has what a cluster admin gives its nodes (compose's or KubeRay's ``env``): the token, the
S3 endpoint and credentials, the MLflow server's URL. Each worker also has a custom resource
``host_<role>: 1``, so that a test can place a driver or a trial on a given host.

Faults are made the way they happen: :meth:`MultiHostCluster.kill_host` (``kill -9`` of every process
of a host, its disk too if asked), :meth:`cut_link` (the host's leg on the bridge down, then up),
:meth:`kill_mlflow` / :meth:`start_mlflow`, :meth:`stop_ray_everywhere` (the whole cluster down).
:meth:`heal` brings every worker back (a dead or partitioned raylet is restarted, as an orchestrator
would) so that tests can follow each other on one cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cluster.hosts import Host, Network

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
S3_PORT, MLFLOW_PORT, GCS_PORT, JOBS_PORT = 8333, 5000, 6379, 8265
WORKERS = ("w1", "w2")
BUCKET, MLFLOW_BUCKET = "adl", "mlflow"


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    t0, last = time.time(), None
    while time.time() - t0 < timeout_s:
        try:
            return check()
        except Exception as e:  # noqa: BLE001 - anything that is not ready yet
            last = e
            time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s: {last!r}")


def http_status(url: str, timeout_s: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


class MultiHostCluster:
    """The hosts, their servers, and what a test does to them."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.token = secrets.token_hex(32)
        self.s3_key, self.s3_secret = "adl" + secrets.token_hex(6), secrets.token_hex(20)
        self.net = Network(("head", *WORKERS, "s3"), REPO, BIN, env={})
        self.head, self.storage = self.net.hosts["head"], self.net.hosts["s3"]
        self.workers = {w: self.net.hosts[w] for w in WORKERS}
        self.mlflow_proc: subprocess.Popen[bytes] | None = None
        self.figures: dict[str, dict[str, Any]] = {}  # what each fault cost, for docs/cluster.md

    def record(self, fault: str, **figures: Any) -> None:
        """Keep what a fault cost (written out when ``ADL_CLUSTER_FIGURES`` names a file)."""
        self.figures[fault] = figures

    # -- addresses --------------------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.storage.ip}:{S3_PORT}"

    @property
    def jobs(self) -> str:
        return f"http://{self.head.ip}:{JOBS_PORT}"

    @property
    def mlflow(self) -> str:
        return f"http://{self.head.ip}:{MLFLOW_PORT}"

    @property
    def s3_env(self) -> dict[str, str]:
        """What a node (or a laptop) needs to reach the S3 storage with pyarrow, boto3 and MLflow."""
        return {
            "AWS_ACCESS_KEY_ID": self.s3_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }

    # -- start ---------------------------------------------------------------------------------------------
    def start(self) -> MultiHostCluster:
        self._laptop_token()
        self.net.create()
        self.net.env.update(
            self.s3_env,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=self.token,
            RAY_USAGE_STATS_ENABLED="0",
            RAY_DEDUP_LOGS="0",
            TUNE_GLOBAL_CHECKPOINT_S="1",  # Tune saves the sweep's state every second: a kill loses little
            MLFLOW_TRACKING_URI=self.mlflow,
        )
        self.start_s3()
        self.start_head()
        self.start_mlflow()
        for w in self.workers.values():
            self.start_worker(w)
        wait_for(self._s3_ready, 90, "S3 (SeaweedFS)")
        wait_for(lambda: self.mlflow_up() or 1 / 0, 120, "MLflow server")
        wait_for(lambda: len(self.alive_workers()) == len(self.workers) or 1 / 0, 120, "Ray workers")
        return self

    def _laptop_token(self) -> None:
        """This process (the laptop) talks to the cluster with its token, as a user with
        ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` would; :meth:`stop` puts the old ones back."""
        path = self.logs / "auth_token"
        path.write_text(self.token)
        path.chmod(0o600)
        keys = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
        self._saved_env = {k: os.environ.get(k) for k in keys}
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(path))
        os.environ.pop("RAY_AUTH_TOKEN", None)
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()  # an earlier ray.init may have cached another

    def start_s3(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "adl",
                    "credentials": [{"accessKey": self.s3_key, "secretKey": self.s3_secret}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        Path(f"/proc/{self.storage.anchor.pid}/root/tmp/s3.json").write_text(json.dumps(identities))  # type: ignore[union-attr]
        self.storage.run(["mkdir", "-p", "/tmp/weed"])
        ip = self.storage.ip
        self.storage.popen(
            ["weed", "server", "-dir=/tmp/weed", f"-ip={ip}", f"-ip.bind={ip}", "-s3", f"-s3.port={S3_PORT}",
             "-s3.config=/tmp/s3.json", "-master.volumeSizeLimitMB=64", "-volume.max=30"],
            self.logs / "s3.log",
        )  # fmt: skip

    def _s3_ready(self) -> None:
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.s3_key,
            aws_secret_access_key=self.s3_secret,
            region_name="us-east-1",
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in {BUCKET, MLFLOW_BUCKET} - have:
            s3.create_bucket(Bucket=bucket)

    def start_head(self) -> None:
        out = self.head.run(
            ["ray", "start", "--head", f"--node-ip-address={self.head.ip}", f"--port={GCS_PORT}",
             f"--dashboard-host={self.head.ip}", f"--dashboard-port={JOBS_PORT}", "--include-dashboard=true",
             "--num-cpus=0", "--object-store-memory=200000000", "--disable-usage-stats"],
            timeout=180,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def start_worker(self, host: Host) -> None:
        out = host.run(
            ["ray", "start", f"--address={self.head.ip}:{GCS_PORT}", f"--node-ip-address={host.ip}",
             "--num-cpus=1", f"--resources={json.dumps({f'host_{host.role}': 1})}",
             "--object-store-memory=200000000", "--disable-usage-stats"],
            timeout=180,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def start_mlflow(self) -> None:
        self.head.run(["mkdir", "-p", "/tmp/mlflow"])
        self.mlflow_proc = self.head.popen(
            ["mlflow", "server", "--host", self.head.ip, "--port", str(MLFLOW_PORT),
             "--backend-store-uri", "sqlite:////tmp/mlflow/mlflow.db",
             "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts", "--workers", "1"],
            self.logs / "mlflow.log",
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # GenAI job runners: 8 idle processes
        )  # fmt: skip

    # -- state -----------------------------------------------------------------------------------------------
    def state(self, resource: str, **filters: str) -> list[Any]:
        """Ray's state API (``nodes``, ``actors``, ``tasks``...) with the token sent explicitly: Ray's
        own loader decides once per process whether auth is on, before this fixture set it."""
        from ray.util.state.api import StateApiClient
        from ray.util.state.common import ListApiOptions, StateResource

        from pipelines.distributed.jobs import auth_headers

        options = ListApiOptions(detail=True, filters=[(k, "=", v) for k, v in filters.items()])
        client = StateApiClient(address=self.jobs, headers=auth_headers())
        return list(client.list(StateResource(resource), options=options, raise_on_missing_output=False))

    def nodes(self) -> list[Any]:
        return self.state("nodes")

    def alive_workers(self) -> dict[str, str]:
        """role -> node id of the workers Ray counts alive."""
        by_ip = {h.ip: r for r, h in self.workers.items()}
        nodes = self.nodes()
        return {by_ip[n.node_ip]: n.node_id for n in nodes if n.state == "ALIVE" and n.node_ip in by_ip}

    # -- faults ----------------------------------------------------------------------------------------------
    def kill_host(self, role: str, disk: bool = False) -> set[int]:
        return self.net.hosts[role].kill(disk=disk)

    def cut_link(self, role: str, seconds: float) -> None:
        host = self.net.hosts[role]
        host.set_link(False)
        try:
            time.sleep(seconds)
        finally:
            host.set_link(True)

    def _mlflow_pids(self) -> set[int]:
        """The MLflow server's process and everything under it (its uvicorn workers)."""
        if self.mlflow_proc is None:
            return set()
        table = _parents()
        tree, grew = {self.mlflow_proc.pid}, True
        while grew:
            kids = {p for p, parent in table.items() if parent in tree} - tree
            tree |= kids
            grew = bool(kids)
        return tree

    def kill_mlflow(self) -> None:
        """``kill -9`` of the MLflow server (its runs and artifacts stay in its store and on S3)."""
        for pid in self._mlflow_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.mlflow_proc is not None:
            self.mlflow_proc.wait(timeout=10)

    def stop_ray_everywhere(self) -> None:
        """The whole Ray cluster down: every process of the head and the workers but the MLflow server
        (S3 is a host of its own); drivers die with it."""
        keep = self._mlflow_pids()
        for host in (self.head, *self.workers.values()):
            keep.add(host.anchor.pid if host.anchor is not None else -1)
            for pid in host.pids() - keep:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def mlflow_up(self) -> bool:
        try:
            return http_status(f"{self.mlflow}/health") == 200
        except OSError:
            return False

    def heal(self) -> None:
        """Every worker host up (a rebooted one with a fresh disk) with a live raylet, as an
        orchestrator would restart them, and the MLflow server answering."""
        for host in self.workers.values():
            host.set_link(True)
            if host.anchor is None or host.anchor.poll() is not None:
                host.boot()
        alive = self.alive_workers()
        for role, host in self.workers.items():
            if role not in alive:
                host.kill()  # what is left of a raylet the GCS declared dead
                self.start_worker(host)
        if not self.mlflow_up():
            self.start_mlflow()
        wait_for(lambda: self.mlflow_up() or 1 / 0, 120, "MLflow server")
        wait_for(lambda: len(self.alive_workers()) == len(self.workers) or 1 / 0, 120, "Ray workers")

    def stop(self) -> None:
        from ray._raylet import AuthenticationTokenLoader

        self.net.destroy()
        for k, v in getattr(self, "_saved_env", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        AuthenticationTokenLoader.instance().reset_cache()


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    table = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (d / "stat").read_text()
                table[int(d.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return table
