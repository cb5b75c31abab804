from __future__ import annotations

import pytest
import torch

from components.config import ConfigError, load
from components.rl.dqn.config import DQNConfig

CARTPOLE = "configs/dqn/cartpole.yaml"


def test_cartpole_yaml_loads_with_overrides():
    cfg = load(DQNConfig, CARTPOLE, ["collectors.envs_per_collector=2", "learner.n_step=5"])
    assert cfg.env.id == "CartPole-v1" and cfg.collectors.envs_per_collector == 2 and cfg.learner.n_step == 5
    assert cfg.replay.capacity == 50_000 and cfg.learner.target_every == 250


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["learner.batch_size=64", "replay.capacity=32", "replay.min_size=16"], "learner.batch_size"),
        (["replay.min_size=60000"], "replay.min_size"),
        (["replay.min_size=10"], "replay.min_size"),  # below the batch size of 64
    ],
)
def test_inconsistent_sizes_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load(DQNConfig, CARTPOLE, overrides)


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="n_steps"):
        load(DQNConfig, CARTPOLE, ["learner.n_steps=3"])


def test_pong_gpu_config_fits_one_gpu_and_its_cpus():
    """The learner actor's and the inference actor's GPU shares make one GPU; one CPU per collector
    leaves cores for the driver, the replay and the actors' host sides."""
    cfg = load(DQNConfig, "configs/dqn/pong_gpu.yaml")
    assert cfg.learner_in_actor() and cfg.learner_gpus() + cfg.inference_gpus() == 1.0
    assert cfg.num_cpus is not None and cfg.collectors.num_collectors <= cfg.num_cpus - 2
    assert cfg.learner.batch_size * cfg.learner.batches_per_call <= cfg.replay.spi_tolerance
    assert cfg.env.max_episode_steps == 108_000  # ALE's 30 minutes of frames: whole games


# -- learner.device: the names every trainer takes ------------------------------------------------


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_the_learner_takes_every_device_name_the_other_trainers_take(name):
    """``cuda:N`` as GAN and sequence trainers take it (a config check: no GPU is looked for here)."""
    cfg = load(DQNConfig, CARTPOLE, [f"learner.device={name}", "learner.placement=driver"])
    assert cfg.learner.device == name
    assert cfg.learner_gpus() == (1.0 if name.startswith("cuda") else 0.0)


def test_the_gpu_benchmarks_learner_overrides_load():
    """``bench_dqn_gpu.py --parts learner`` passes the resolved device, ``cuda:0``, for every case."""
    cfg = load(
        DQNConfig,
        "configs/dqn/pong_gpu.yaml",
        ["learner.device=cuda:0", "learner.batch_size=32", "learner.tf32=true"],
    )
    assert cfg.learner.device == "cuda:0" and cfg.learner_in_actor()


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda0", "CUDA"])
def test_a_learner_device_that_is_not_one_is_refused_at_load(name):
    with pytest.raises(ConfigError) as e:
        load(DQNConfig, CARTPOLE, [f"learner.device={name}"])
    assert str(e.value) == f"learner.device: {name!r} is not a device; allowed: auto, cpu, cuda, cuda:N"


def test_a_gpu_index_is_refused_where_ray_picks_the_learners_gpu():
    """In a Ray actor the learner sees only the GPU Ray gave it, as cuda:0."""
    with pytest.raises(
        ConfigError, match=r"learner.device: cuda:1 picks a GPU by index, but the learner runs in a Ray actor"
    ):
        load(DQNConfig, CARTPOLE, ["learner.device=cuda:1"])  # placement auto: an actor on Ray
    assert load(DQNConfig, CARTPOLE, ["learner.device=cuda:0"]).learner_in_actor()
    local = load(DQNConfig, CARTPOLE, ["learner.device=cuda:1", "local=true"])
    assert not local.learner_in_actor()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_a_gpu_index_torch_cannot_see_is_refused_when_the_learner_is_built():
    from components.nets.qnets import MLPQNetwork
    from components.rl.dqn.learner import Learner

    cfg = load(DQNConfig, CARTPOLE, ["learner.device=cuda:1", "learner.placement=driver"])
    with pytest.raises(ConfigError) as e:
        Learner(MLPQNetwork(4, 2, hidden=(8,), head_hidden=8), cfg.learner)
    assert str(e.value) == "learner.device: cuda:1 was asked for but torch sees no GPU; use auto or cpu"
