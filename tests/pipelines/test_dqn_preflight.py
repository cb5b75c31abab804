"""The pre-flight of a DQN run (issue #24, "one pre-flight per run"): every check once, before Ray
starts (a cluster: once it is joined, and not again); the run then trusts the plan it returns."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import ConfigError, load
from components.rl.dqn.config import DQNConfig
from pipelines.cli.main import main
from pipelines.dqn import preflight as pf
from pipelines.dqn.preflight import RayResources, preflight
from pipelines.dqn.run import build_wiring

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")


@pytest.fixture
def counted(monkeypatch):
    """Counts of the CPU check, the GPU check and the questions to Ray about its size; nothing may
    start or join Ray except through ``init_ray``, which is counted too (a stub: no Ray starts)."""
    import pipelines.distributed.learner_actor as learner_actor
    import pipelines.distributed.ray_runtime as ray_runtime

    calls = {"cpus": 0, "gpus": 0, "ray_size": 0, "init_ray": 0}

    def count(name, real):
        def wrapped(*a, **k):
            calls[name] += 1
            return real(*a, **k)

        return wrapped

    monkeypatch.setattr(pf, "_check_cpus", count("cpus", pf._check_cpus))
    monkeypatch.setattr(learner_actor, "check_gpus", count("gpus", learner_actor.check_gpus))
    monkeypatch.setattr(ray_runtime, "init_ray", count("init_ray", lambda **k: None))
    monkeypatch.setattr(ray_runtime, "start_ray_in_background", count("init_ray", lambda *a: None))
    return calls


def _join_a_cluster(monkeypatch, calls, cpus: float, gpus: float) -> None:
    """A cluster whose size is known only once joined: 'joining' it is counted, asking its size too."""
    import pipelines.distributed.ray_runtime as ray_runtime

    def size():
        assert calls["init_ray"] > calls["ray_size"], "asked the cluster's size before joining it"
        calls["ray_size"] += 1
        return cpus, gpus

    monkeypatch.setattr(ray_runtime, "joins_cluster", lambda address: True)
    monkeypatch.setattr(ray_runtime, "ray_size", size)


def test_a_cluster_is_joined_and_checked_once_and_the_wiring_trusts_the_plan(monkeypatch, counted):
    import pipelines.distributed.ray_wiring as ray_wiring

    _join_a_cluster(monkeypatch, counted, cpus=4.0, gpus=0.0)
    built = []
    monkeypatch.setattr(ray_wiring, "RayWiring", lambda *a: built.append(a) or "wiring")
    cfg = load(DQNConfig, CARTPOLE, ["collectors.num_collectors=3", "address=10.0.0.10:6379"])
    plan = preflight(cfg, folders=False)
    assert plan.ray == RayResources(cpus=4.0, gpus=0.0, joined=True)
    assert counted == {"cpus": 1, "gpus": 1, "ray_size": 1, "init_ray": 1}
    assert build_wiring(plan.cfg, plan.setup) == "wiring" and len(built) == 1
    # The wiring connects (init_ray returns the connection the pre-flight made) and checks nothing.
    assert counted == {"cpus": 1, "gpus": 1, "ray_size": 1, "init_ray": 2}


def test_a_cluster_too_small_is_refused_once_joined(monkeypatch, counted):
    _join_a_cluster(monkeypatch, counted, cpus=2.0, gpus=0.0)
    cfg = load(DQNConfig, CARTPOLE, ["collectors.num_collectors=3", "address=10.0.0.10:6379"])
    with pytest.raises(
        ConfigError, match="3 collectors need one CPU each, the Ray cluster has 2; allowed: <= 2"
    ):
        preflight(cfg, folders=False)
    gpu = load(DQNConfig, CARTPOLE, ["learner.device=cuda", "collectors.num_collectors=1"])
    with pytest.raises(ConfigError, match=r"learner.num_gpus=1 GPU, but the Ray cluster has 0"):
        preflight(gpu, folders=False)


def test_a_local_ray_is_sized_without_starting_it(monkeypatch, counted):
    import torch

    cfg = load(DQNConfig, CARTPOLE, ["num_cpus=2", "collectors.num_collectors=2"])
    plan = preflight(cfg, folders=False)
    assert plan.ray == RayResources(cpus=2.0, gpus=float(torch.cuda.device_count()), joined=False)
    assert counted == {"cpus": 1, "gpus": 1, "ray_size": 0, "init_ray": 0}  # Ray not started yet
    with pytest.raises(ConfigError, match="3 collectors need one CPU each, the Ray cluster has 2"):
        preflight(dataclasses.replace(cfg, collectors=dataclasses.replace(cfg.collectors, num_collectors=3)))
    local = preflight(load(DQNConfig, CARTPOLE, ["local=true"]), folders=False)
    assert local.ray is None and counted["cpus"] == 2  # no Ray, nothing to size


def test_the_plan_holds_the_absolute_checkpoint_dir_and_the_config_given_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load(DQNConfig, CARTPOLE, ["local=true", "checkpoint.dir=runs/../ck"])
    plan = preflight(cfg)
    assert plan.cfg.checkpoint.dir == str(tmp_path / "ck") and plan.checkpoint_root == tmp_path / "ck"
    assert cfg.checkpoint.dir == "runs/../ck"  # frozen: the run's copy is a new config
    assert dataclasses.replace(plan.cfg, checkpoint=cfg.checkpoint) == cfg  # nothing else differs
    assert not (tmp_path / "ck").exists()  # checked writable, left as it was
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.ray = None  # type: ignore[misc]


@pytest.mark.parametrize(
    "sets,needle",
    [
        (["checkpoint.dir=/proc/x"], "checkpoint.dir: cannot write in /proc/x"),
        (
            ["--tracking-uri", "http://127.0.0.1:9"],
            "cannot reach the MLflow tracking server at http://127.0.0.1:9",
        ),
    ],
)
def test_a_bad_folder_or_tracking_server_is_refused_before_ray_starts(
    sets, needle, tracking_uri, counted, capsys
):
    """On Ray (not local): exit 2 before Ray is started or joined, no run opened."""
    argv = ["train", "dqn", "--config", CARTPOLE, "--no-progress", "--set", "num_cpus=2"]
    if sets[0] == "--tracking-uri":
        argv += sets
    else:
        argv += ["--tracking-uri", tracking_uri, *(a for kv in sets for a in ("--set", kv))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert counted["init_ray"] == 0  # Ray never started
    assert not Path(tracking_uri[len("sqlite:///") :]).exists()  # no run was opened


COUNTING_RUN = """
import json, sys
import pipelines.distributed.learner_actor as learner_actor
import pipelines.distributed.ray_runtime as ray_runtime
import pipelines.dqn.preflight as pf
calls = {"cpus": 0, "gpus": 0, "ray_started": 0}
def count(name, real):
    def wrapped(*a, **k):
        calls[name] += 1
        return real(*a, **k)
    return wrapped
pf._check_cpus = count("cpus", pf._check_cpus)
learner_actor.check_gpus = count("gpus", learner_actor.check_gpus)
ray_runtime._init_ray = count("ray_started", ray_runtime._init_ray)
from pipelines.cli.main import main
code = main(sys.argv[1:])
print("COUNTS " + json.dumps(calls))
sys.exit(code)
"""


@pytest.mark.ray
def test_a_dqn_run_on_ray_checks_its_resources_exactly_once(tracking_uri, tmp_path):
    """A real ``adl train dqn`` on a local Ray (2 collector actors, a replay actor): the CPU and the
    GPU checks ran once each (before, ``_check_cpus`` ran twice and ``check_gpus`` twice: the
    pre-flight, then ``build_wiring`` again once Ray was up)."""
    sets = [
        "num_cpus=2",
        "collectors.num_collectors=2",
        "replay.min_size=500",
        "eval.every_env_steps=1000000",
        "max_env_steps=1500",
        f"checkpoint.dir={tmp_path / 'ck'}",
    ]
    argv = ["train", "dqn", "--config", CARTPOLE, "--tracking-uri", tracking_uri, "--no-progress"]
    argv += [a for kv in sets for a in ("--set", kv)]
    proc = subprocess.run(
        [sys.executable, "-c", COUNTING_RUN, *argv], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout.split("COUNTS ")[-1])
    assert counts == {"cpus": 1, "gpus": 1, "ray_started": 1}
    steps = re.search(r"adl: DQN on CartPole-v1: (\d+) env steps", proc.stdout)
    assert steps and int(steps.group(1)) >= 1500  # the run trained to its budget
