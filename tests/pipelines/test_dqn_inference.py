"""``collectors.inference: gpu`` on a CPU: the shared inference actor batches the collectors' requests
and a collector acting through it steps exactly as one acting with its own network; a run wired that
way trains. (On a GPU the same actor runs with ``collectors.inference_gpus`` > 0; that path is in
``test_dqn_learner_actor.py``, marked cuda.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import load
from components.rl.dqn.collector import Collector
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights
from pipelines.dqn.loop import train_loop
from tests.fakes import MemoryTracker
from tests.pipelines.dqn_ray import ray_dqn

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "configs/dqn/cartpole.yaml")
SHARED = ["collectors.inference=gpu", "collectors.inference_gpus=0", "collectors.inference_wait_ms=50"]


@pytest.mark.ray
def test_the_inference_actor_answers_concurrent_requests_in_one_batch(ray_local):
    from pipelines.distributed.inference_actor import InferenceActor

    cfg = load(DQNConfig, CARTPOLE, [*SHARED, "collectors.num_collectors=2"])
    actor = InferenceActor.remote(cfg, (4,), 2)
    net = build_q_network(cfg.network, (4,), 2)
    ray_local.get(actor.set_weights.remote(get_flat_weights(net)))
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(n, 4)).astype(np.float32) for n in (8, 5))
    qa, qb = ray_local.get([actor.q_values.remote(a), actor.q_values.remote(b)])
    stats = ray_local.get(actor.stats.remote())
    assert stats == {"requests": 2, "batches": 1, "device": "cpu"}  # two collectors, one forward
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(qa, net(torch.as_tensor(a)).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(qb, net(torch.as_tensor(b)).numpy(), rtol=1e-6, atol=1e-6)
    # Alone, a request waits inference_wait_ms for company, then is answered by itself.
    ray_local.get(actor.q_values.remote(a))
    assert ray_local.get(actor.stats.remote())["batches"] == 2
    ray_local.kill(actor)


@pytest.mark.ray
def test_a_collector_acting_through_the_inference_actor_steps_as_one_with_its_own_network(ray_local):
    """Same seeds, same weights: the same actions (hence the same transitions) and the same initial
    priorities (Q from torch in the actor against numpy in the collector: within 1e-5)."""
    from pipelines.distributed.collector_actor import _remote_q
    from pipelines.distributed.inference_actor import InferenceActor

    cfg = load(
        DQNConfig, CARTPOLE, [*SHARED, "collectors.num_collectors=1", "collectors.envs_per_collector=4"]
    )
    actor = InferenceActor.remote(cfg, (4,), 2)
    local = Collector(cfg, 0, (4,), 2)
    remote = Collector(cfg, 0, (4,), 2, q_fn=_remote_q(actor))
    flat = get_flat_weights(build_q_network(cfg.network, (4,), 2))
    local.set_weights(flat)
    ray_local.get(actor.set_weights.remote(flat))
    for _ in range(3):
        want, want_stats = local.run(20)
        got, got_stats = remote.run(20)
        for field in ("obs", "action", "reward", "next_obs", "done", "n", "episode", "step"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        np.testing.assert_allclose(got.priority, want.priority, rtol=1e-5, atol=1e-5)
        assert got_stats.returns == want_stats.returns
    assert ray_local.get(actor.stats.remote())["requests"] == 3 * (20 + 1)  # a step each, priorities
    ray_local.kill(actor)


@pytest.mark.ray
def test_a_run_with_shared_inference_collects_and_trains(ray_local):

    cfg = load(
        DQNConfig,
        CARTPOLE,
        [
            *SHARED,
            "collectors.inference_wait_ms=2",
            "collectors.num_collectors=2",
            "collectors.envs_per_collector=4",
            "replay.capacity=5000",
            "replay.min_size=500",
            "eval.every_env_steps=100000",
            "max_env_steps=3000",
        ],
    )
    with ray_dqn(cfg) as (_, wiring, learner):
        res = train_loop(cfg, wiring, learner, MemoryTracker(), progress=False)
        assert res.env_steps >= 3000 and learner.steps > 0
        stats = ray_local.get(wiring.inference.stats.remote())
        calls = res.env_steps // (cfg.collectors.envs_per_collector * cfg.collectors.steps_per_call)
        assert stats["requests"] >= calls * cfg.collectors.steps_per_call  # every step asked the actor
        # It acts with the weights published last (to it alone: the collectors run no network).
        last = ray_local.get(wiring.weights_ref)
        np.testing.assert_array_equal(ray_local.get(wiring.inference.weights.remote()), last)
        assert ray_local.get(wiring.collectors[0].weights.remote()).size == 0  # they hold no network


@pytest.mark.ray
def test_an_inference_gpu_share_the_cluster_cannot_give_is_refused(ray_local):
    from components.config import ConfigError
    from pipelines.distributed.learner_actor import check_gpus

    cfg = load(DQNConfig, CARTPOLE, ["collectors.inference=gpu", "collectors.inference_gpus=0.25"])
    with pytest.raises(ConfigError, match=r"collectors.inference_gpus=0.25 GPU .* but the Ray cluster has 0"):
        check_gpus(cfg)
    check_gpus(load(DQNConfig, CARTPOLE, SHARED))  # a share of 0: the actor runs on a CPU
