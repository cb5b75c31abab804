"""The learner as a Ray actor: it trains from the replay actor, its weights reach the collectors by
reference, evaluation and checkpoints go through it, a GPU it cannot get is refused up front, and
(where torch sees a GPU) ``learner.device: cuda`` runs it on a fractional GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import load
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import get_flat_weights
from pipelines.dqn.checkpoint import Checkpointer, restore
from pipelines.dqn.checkpoint_check import verify
from pipelines.dqn.loop import train_loop
from pipelines.dqn.preflight import DQNSetup
from pipelines.dqn.run import build_learner
from pipelines.dqn.state import LoopControl
from tests.fakes import MemoryTracker
from tests.pipelines.dqn_cli import train_dqn_argv
from tests.pipelines.dqn_ray import ray_dqn

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")
SMALL = [
    "collectors.num_collectors=2",
    "collectors.envs_per_collector=4",
    "replay.capacity=5000",
    "replay.min_size=500",
    "eval.every_env_steps=2000",
    "eval.episodes=2",
    "eval.stop_at_return=null",
    "log_every_s=0.2",
    "max_env_steps=6000",
]


def _cli(tracking_uri: str, cwd: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        train_dqn_argv(tracking_uri, "num_cpus=2", *sets),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.ray
def test_learner_actor_trains_publishes_by_reference_evaluates_and_checkpoints(ray_local, tmp_path):
    from pipelines.distributed.learner_actor import RemoteLearner

    cfg = load(DQNConfig, CARTPOLE, [*SMALL, "learner.placement=actor", "learner.device=cpu"])
    with ray_dqn(cfg) as (setup, wiring, learner):
        obs_shape, n_actions = setup.obs_shape, setup.n_actions
        assert isinstance(learner, RemoteLearner)
        assert learner.online is setup.net  # the driver's network is the actor's mirror
        published: list = []
        plain_publish = wiring.publish
        wiring.publish = lambda w: (published.append(w), plain_publish(w))  # type: ignore[method-assign]
        assert learner.info()["pid"] != os.getpid()  # it trains in another process
        tracker = MemoryTracker()
        res = train_loop(cfg, wiring, learner, tracker, progress=False, control=LoopControl())
        assert res.env_steps >= 6000 and learner.steps > 0
        assert res.learner_steps == learner.steps
        # Updates keep pace with the samples-per-insert target (within the limiter's tolerance).
        assert res.state is not None
        ratio = learner.steps * cfg.learner.batch_size / (res.state.inserts - cfg.replay.min_size)
        spi = cfg.replay.samples_per_insert
        assert 0.75 * spi <= ratio <= 1.25 * spi, (ratio, spi)
        losses = [v for _, v in tracker.metrics["loss"]]
        assert losses and all(np.isfinite(losses))
        assert len(res.history["eval_return"]) == 3  # at 2000, 4000 and 6000 env steps, on the mirror
        # Weights: the actor put them; the driver forwarded the reference unchanged to every collector.
        refs = [w for w in published if not isinstance(w, np.ndarray)]
        assert len(refs) >= 2, "no publish from the learner actor"
        last = ray_local.get(refs[-1])
        for c in wiring.collectors:
            np.testing.assert_array_equal(ray_local.get(c.weights.remote()), last)
        assert not np.array_equal(last, ray_local.get(refs[0]))  # they changed between publishes
        # The mirror is the actor's online network.
        np.testing.assert_array_equal(get_flat_weights(learner.online), learner.get_weights())

        # A checkpoint goes through the actor, and loads back into a fresh one.
        ckpt = Checkpointer(cfg, tmp_path / "run" / "checkpoint", learner, wiring, (obs_shape, "float32", 2))
        ckpt.save(res.state)
        saved = learner.state_dict()
        assert saved["steps"] == learner.steps and saved["online"]["body.0.weight"].device.type == "cpu"
        manifest = verify(ckpt.dir, cfg, obs_shape, n_actions, learner.online)
        fresh = build_learner(cfg, DQNSetup.from_config(cfg), wiring, None)
        restore(manifest, fresh, wiring)
        assert fresh.steps == learner.steps
        np.testing.assert_array_equal(fresh.get_weights(), learner.get_weights())
        fresh.stop()


def test_placement_actor_without_ray_is_refused():
    with pytest.raises(Exception, match="learner.placement: actor needs Ray, but local is true"):
        load(DQNConfig, CARTPOLE, ["local=true", "learner.placement=actor"])


def test_a_gpu_learner_the_cluster_cannot_place_is_refused(tracking_uri, tmp_path):
    """Refused before the run opens (issue #15, item 9): a local Ray's GPUs are this host's."""
    proc = _cli(tracking_uri, tmp_path, "learner.device=cuda", "learner.num_gpus=64", "max_env_steps=2000")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "asks for learner.num_gpus=64 GPU, but the Ray cluster has" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(tracking_uri[len("sqlite:///") :]).exists()  # no run was opened


@pytest.mark.ray
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_learner_runs_in_an_actor_on_half_a_gpu_and_solves_cartpole(tmp_path):
    """In a fresh process (its own Ray, which sees the GPU): CartPole reaches greedy 475."""
    script = (
        "import sys\n"
        "from components.config import load\n"
        "from components.rl.dqn.config import DQNConfig\n"
        "from pipelines.dqn.run import run_dqn\n"
        "from pipelines.tracking import NullTracker\n"
        "cfg = load(DQNConfig, sys.argv[1], sys.argv[2:])\n"
        "res, learner = run_dqn(cfg, NullTracker(), progress=False)\n"
        "print(res.solved_at_s, res.learner_steps, learner.device)\n"
    )
    sets = ["num_cpus=4", "learner.device=cuda", "learner.num_gpus=0.5", "max_time_s=240"]
    proc = subprocess.run(
        [sys.executable, "-c", script, CARTPOLE, *sets], capture_output=True, text=True, timeout=400, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "adl: learner actor on cuda" in proc.stderr
    solved_s, steps, mirror_device = proc.stdout.split()[-3:]
    assert solved_s != "None" and int(steps) > 0 and mirror_device == "cpu"


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("inference", ["local", "gpu"])
def test_pong_on_ray_trains_with_the_learner_actor_on_the_gpu_for_a_short_budget(inference):
    """Pong through the pixel replay actor, the learner actor replaying CUDA graphs on half a GPU and
    (inference: gpu) the collectors acting through the inference actor on a quarter of it."""
    script = (
        "import sys\n"
        "from components.config import load\n"
        "from components.rl.dqn.config import DQNConfig\n"
        "from pipelines.dqn.run import run_dqn\n"
        "from pipelines.tracking import NullTracker\n"
        "cfg = load(DQNConfig, sys.argv[1], sys.argv[2:])\n"
        "res, learner = run_dqn(cfg, NullTracker(), progress=False)\n"
        "print(res.env_steps, res.learner_steps)\n"
    )
    sets = [
        "num_cpus=4",
        "learner.device=cuda",
        "learner.num_gpus=0.5",
        f"collectors.inference={inference}",
        "collectors.inference_gpus=0.25",
        "replay.capacity=20000",
        "replay.min_size=1000",
        "eval.every_env_steps=1000000000",
        "max_env_steps=8000",
        "max_time_s=120",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "configs/dqn/pong.yaml"), *sets],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "adl: learner actor on cuda" in proc.stderr and "a CUDA graph per update" in proc.stderr
    env_steps, updates = (int(v) for v in proc.stdout.split()[-2:])
    assert env_steps >= 8000 and updates > 0
