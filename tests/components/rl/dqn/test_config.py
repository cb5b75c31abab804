from __future__ import annotations

import pytest

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
