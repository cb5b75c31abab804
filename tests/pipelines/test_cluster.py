"""From laptop to cluster, for real, on loopback: a Ray head with its Jobs server, a second Ray node,
an MLflow server with an artifacts destination; ``adl submit --follow`` a DQN run and sweeps, and a
sweep resumed after its driver was killed.

Every process is started here with its own ports and ``--temp-dir`` and stopped here by PID (never
``ray stop``, which would kill every other Ray on this host).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.distributed.jobs import check_address

pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SWEEP = "configs/sweeps/qlearn_frozenlake.yaml"


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(check, timeout_s: float) -> None:
    t0 = time.time()
    while True:
        try:
            check()
            return
        except Exception:
            if time.time() - t0 > timeout_s:
                raise
            time.sleep(0.5)


def http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2):
        pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",  # the job's `python` is this venv's
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_CHDIR_TO_TRIAL_DIR="0",
        TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1",
        TUNE_GLOBAL_CHECKPOINT_S="1",  # save the sweep's state every second, so a kill loses little
        RAY_DEDUP_LOGS="0",
    )
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _join_address(port: int) -> str:
    """The head's GCS (bound to 127.0.0.1) by a loopback name that `ray start` leaves alone.

    `ray start --address=127.0.0.1:P` rewrites 127.0.0.1 and localhost to the host's LAN address,
    where a loopback-only head does not listen; a host name that resolves to 127.0.0.1 (or the
    numeric shorthand 127.1) is passed through.
    """
    name = socket.gethostname()
    with contextlib.suppress(OSError):
        if socket.gethostbyname(name) == "127.0.0.1":
            return f"{name}:{port}"
    return f"127.1:{port}"


def _ray_node_args(temp_dir: str) -> list[str]:
    agent, agent_grpc, metrics, rt_env, nm, om = free_ports(6)
    return [
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={rt_env}",
        f"--node-manager-port={nm}",
        f"--object-manager-port={om}",
        "--object-store-memory=200000000",
        "--disable-usage-stats",
    ]


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), read from /proc."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        table[int(d.name)] = (ppid, cmdline)
    return table


def _processes_under(temp_dir: str) -> set[int]:
    """The processes `ray start` launched with this temp dir, and all their descendants."""
    table = _proc_table()
    found = {pid for pid, (_, cmd) in table.items() if temp_dir in cmd and pid != os.getpid()}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= kids
        grew = bool(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop(pids: set[int]) -> None:
    """SIGTERM, then SIGKILL what is left after 5 s (the GCS server does not always exit on SIGTERM)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        t0 = time.time()
        while (pids := {p for p in pids if _alive(p)}) and time.time() - t0 < 5:
            time.sleep(0.2)
        if not pids:
            return


def _reset_token_cache() -> None:
    from ray._raylet import AuthenticationTokenLoader

    AuthenticationTokenLoader.instance().reset_cache()


@dataclass
class Cluster:
    gcs: str  # 127.0.0.1:PORT, for drivers that join with ray.init
    jobs: str  # http://127.0.0.1:PORT, the Jobs server (dashboard)
    mlflow: str  # http://127.0.0.1:PORT
    artifacts: Path  # the server's --artifacts-destination
    worker_node_id: str
    sweeps: Path  # storage_path for sweeps run as jobs


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="adlray", dir="/tmp")  # short: Ray's unix sockets live here
    store = Path(tempfile.mkdtemp(prefix="adlmlflow"))
    # Ray 2.60 token authentication, with a token of this cluster's own: every node, the Jobs
    # client in this process and the drivers started here present it.
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    _reset_token_cache()  # an earlier ray.init in this process may have cached ~/.ray/auth_token
    env = _env()
    gcs_port, dash_port, client_port, mlflow_port = free_ports(4)
    mlflow_proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        env=env,
        stdout=open(store / "server.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--num-cpus=2",
                f"--port={gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash_port}",
                f"--ray-client-server-port={client_port}",
                "--include-dashboard=true",
                *_ray_node_args(temp_dir),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                f"--address={_join_address(gcs_port)}",
                "--num-cpus=1",
                '--resources={"worker_node": 1}',
                *_ray_node_args(temp_dir),
            ],
            env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"},  # "0" forbids joining a second node
            check=True,
            capture_output=True,
            timeout=120,
        )
        jobs = f"http://127.0.0.1:{dash_port}"
        wait_for(lambda: check_address(jobs, timeout_s=2), 60)  # sends the token
        wait_for(lambda: http_ok(f"http://127.0.0.1:{mlflow_port}/health"), 90)
        from ray.util.state import list_nodes

        nodes = list_nodes(address=jobs, detail=True)
        worker = [n for n in nodes if "worker_node" in (n.resources_total or {})]
        assert len(nodes) == 2 and len(worker) == 1
        yield Cluster(
            gcs=f"127.0.0.1:{gcs_port}",
            jobs=jobs,
            mlflow=f"http://127.0.0.1:{mlflow_port}",
            artifacts=store / "artifacts",
            worker_node_id=worker[0].node_id,
            sweeps=store / "sweeps",
        )
    finally:
        _stop(_processes_under(temp_dir))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reset_token_cache()
        os.killpg(mlflow_proc.pid, signal.SIGTERM)
        try:
            mlflow_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(mlflow_proc.pid, signal.SIGKILL)
            mlflow_proc.wait(timeout=5)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def submit(cluster: Cluster, sub_id: str, *command: str, extra: tuple[str, ...] = ()) -> int:
    return main(
        [
            "submit",
            "--address",
            cluster.jobs,
            "--working-dir",
            str(REPO),
            "--tracking-uri",
            cluster.mlflow,
            "--submission-id",
            sub_id,
            *extra,
            "--follow",
            "--",
            *command,
        ]
    )


def job_status(cluster: Cluster, sub_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(cluster.jobs).get_job_status(sub_id).value)


def sweep_runs(client: MlflowClient, experiment: str) -> tuple[object, list[object]]:
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("adl.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    return parent, children


def test_submit_follow_dqn_run_lands_on_the_mlflow_server(cluster, capsys, tmp_path):
    code = submit(
        cluster,
        "adl-test-dqn",
        "adl",
        "train",
        "dqn",
        "--config",
        "configs/dqn/cartpole.yaml",
        "--set",
        "max_env_steps=3000",
        "--set",
        "eval.every_env_steps=100000",
        "--set",
        "replay.min_size=500",
        "--set",
        "collectors.num_collectors=1",
        "--experiment",
        "cluster-dqn",
        "--no-progress",
    )
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-2000:]
    assert job_status(cluster, "adl-test-dqn") == "SUCCEEDED"

    client = MlflowClient(cluster.mlflow)  # over HTTP, as any laptop would
    runs = client.search_runs([client.get_experiment_by_name("cluster-dqn").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert f"adl: run id {run.info.run_id}" in out.out  # the job's own log, streamed by --follow
    assert run.info.status == "FINISHED"
    assert run.data.params["collectors.num_collectors"] == "1"
    assert run.data.params["max_env_steps"] == "3000"
    assert run.data.metrics["final/final_env_steps"] >= 3000
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded over HTTP, not to a path
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"final_model.pt", "learning_curve.png"} <= names
    local = client.download_artifacts(run.info.run_id, "final_model.pt", str(tmp_path))
    assert Path(local).stat().st_size > 1000
    assert list(cluster.artifacts.rglob("final_model.pt"))  # stored by the server itself
    assert run.data.tags["adl.ray_job_id"] == "adl-test-dqn" and run.data.tags["mlflow.source.type"] == "JOB"


def test_submit_checks_the_clusters_python_before_uploading(cluster, capsys):
    """A head whose python lacks a package the job needs is found before anything is uploaded: a probe
    job asks the cluster's own python; here for a module no python has."""
    from ray.job_submission import JobSubmissionClient

    code = submit(
        cluster,
        "adl-test-missing",
        "adl",
        "train",
        "qlearn",
        extra=("--require", "adl_no_such_module"),
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot import adl_no_such_module" in err and "nothing was uploaded" in err
    assert "Traceback" not in err
    ids = {j.submission_id for j in JobSubmissionClient(cluster.jobs).list_jobs()}
    assert "adl-test-missing" not in ids and any(i.startswith("adl-probe-") for i in ids)


def test_submit_follow_two_trial_sweep_children_of_one_parent(cluster, capsys):
    code = submit(
        cluster,
        "adl-test-sweep",
        "adl",
        "sweep",
        "--config",
        SWEEP,
        "--experiment",
        "cluster-sweep",
        "--set",
        "name=two-trials",
        "--set",
        f"storage_path={cluster.sweeps}",  # default ~/.adl/sweeps: not the test's to fill
        "--set",
        "search_space={alpha.start: {grid: [0.1, 0.5]}}",
        "--set",
        "overrides={episodes: 200, eval_every: 100}",
    )
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-2000:]
    assert job_status(cluster, "adl-test-sweep") == "SUCCEEDED"

    client = MlflowClient(cluster.mlflow)
    parent, children = sweep_runs(client, "cluster-sweep")
    assert len(children) == 2
    assert sorted(float(c.data.params["alpha.start"]) for c in children) == [0.1, 0.5]
    for c in children:
        assert c.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(c.info.run_id, "eval/return")] == [100, 200]
        assert {"config.yaml", "trainer.pt"} <= {a.path for a in client.list_artifacts(c.info.run_id)}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["adl.best_run_id"] in {c.info.run_id for c in children}
    assert {"sweep_scatter.png", "best_config.yaml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


def test_trial_that_requests_a_custom_resource_runs_on_the_node_that_has_it(cluster, capsys):
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors

    code = submit(
        cluster,
        "adl-test-node",
        "adl",
        "sweep",
        "--config",
        SWEEP,
        "--experiment",
        "cluster-node",
        "--set",
        "name=on-worker-node",
        "--set",
        f"storage_path={cluster.sweeps}",
        "--set",
        "search_space={alpha.start: {grid: [0.5]}}",
        "--set",
        "overrides={episodes: 100, eval_every: 100}",
        "--set",
        "resources={cpu: 1, custom: {worker_node: 1}}",
    )
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-2000:]
    ray_job_id = JobSubmissionClient(cluster.jobs).get_job_info("adl-test-node").job_id
    trials = [
        a
        for a in list_actors(address=cluster.jobs, filters=[("job_id", "=", ray_job_id)], detail=True)
        if a.class_name == "ImplicitFunc"  # Tune's actor for a function trainable
    ]
    assert len(trials) == 1
    assert trials[0].node_id == cluster.worker_node_id
    _, children = sweep_runs(MlflowClient(cluster.mlflow), "cluster-node")
    assert len(children) == 1 and children[0].info.status == "FINISHED"


def test_sweep_resumed_after_its_driver_is_killed_reruns_only_unfinished_trials(cluster, tmp_path):
    client = MlflowClient(cluster.mlflow)
    exp = "cluster-resume"
    cmd = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "sweep",
        "--address",
        cluster.gcs,
        "--tracking-uri",
        cluster.mlflow,
        "--experiment",
        exp,
    ]
    sweep = [
        "--config",
        str(REPO / SWEEP),
        "--set",
        "name=resume-me",
        "--set",
        f"storage_path={tmp_path / 'sweeps'}",
        "--set",
        "max_concurrent=1",
        "--set",
        "search_space={alpha.start: {grid: [0.1, 0.2, 0.3, 0.4]}}",
        "--set",
        "overrides={episodes: 3000, eval_every: 300}",
        "--set",
        "artifacts_every=5",
    ]
    log = open(tmp_path / "driver1.log", "wb")  # noqa: SIM115
    driver = subprocess.Popen(cmd + sweep, cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT)

    def finished_children() -> dict[str, list[tuple[int, int]]]:
        e = client.get_experiment_by_name(exp)
        if e is None:
            return {}
        runs = client.search_runs([e.experiment_id], "attributes.status = 'FINISHED'")
        return {
            r.info.run_id: [
                (m.step, m.timestamp) for m in client.get_metric_history(r.info.run_id, "eval/return")
            ]
            for r in runs
            if "mlflow.parentRunId" in r.data.tags
        }

    t0 = time.time()
    while len(done := finished_children()) < 2:
        assert driver.poll() is None, (tmp_path / "driver1.log").read_text()[-3000:]
        assert time.time() - t0 < 180, "two trials did not finish in time"
        time.sleep(0.5)
    time.sleep(1.5)  # past one TUNE_GLOBAL_CHECKPOINT_S period: Tune has saved that they finished
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    assert len(done) < 4, "the sweep finished before it could be interrupted"

    resumed = subprocess.run(
        cmd + ["--resume", str(tmp_path / "sweeps" / "resume-me")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    parent, children = sweep_runs(client, exp)
    assert len(children) == 4  # a resumed trial appends to its own run, never opens a second
    assert sorted(float(c.data.params["alpha.start"]) for c in children) == [0.1, 0.2, 0.3, 0.4]
    assert all(c.info.status == "FINISHED" for c in children)
    after = finished_children()
    for run_id, history in done.items():  # the trials that had finished were not run again
        assert after[run_id] == history
    for c in children:
        assert client.get_metric_history(c.info.run_id, "eval/return")[-1].step == 3000
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["adl.best_run_id"] in {c.info.run_id for c in children}
    state = json.loads((tmp_path / "sweeps" / "resume-me" / "adl_sweep.json").read_text())
    assert state["parent_run_id"] == parent.info.run_id
