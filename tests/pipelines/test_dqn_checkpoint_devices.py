"""Checkpoints cross devices: written by a learner on the GPU, restored on the CPU, and back.

Runs only where torch sees a GPU (``learner.device: auto`` picks it); a CPU-only machine skips it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from components.config import load
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.cycle import InProcessLearner
from components.rl.dqn.env_factory import check_spaces
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import build_q_network
from pipelines.dqn.checkpoint import Checkpointer, restore
from pipelines.dqn.checkpoint_check import verify
from pipelines.dqn.local_wiring import LocalWiring
from pipelines.dqn.loop import train_loop
from pipelines.dqn.state import LoopControl
from pipelines.tracking import NullTracker

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "local=true",
    "collectors.num_collectors=1",
    "collectors.envs_per_collector=4",
    "replay.capacity=2000",
    "replay.min_size=256",
    "eval.every_env_steps=100000",
    "max_env_steps=1500",
]


def _parts(device: str):
    cfg = load(DQNConfig, REPO / "configs/dqn/cartpole.yaml", [*SMALL, f"learner.device={device}"])
    obs_shape, obs_dtype, n_actions = check_spaces(cfg)
    wiring = LocalWiring(cfg, obs_shape, obs_dtype, n_actions)
    net = build_q_network(cfg.network, obs_shape, n_actions)
    learner = InProcessLearner(Learner(net, cfg.learner), wiring, cfg.learner.publish_every)
    return cfg, learner, wiring, (obs_shape, str(obs_dtype), n_actions)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("src,dst", [("cuda", "cpu"), ("cpu", "cuda")])
def test_checkpoint_restores_across_devices(src, dst, tmp_path):
    cfg, learner, wiring, spaces = _parts(src)
    res = train_loop(cfg, wiring, learner, NullTracker(), progress=False, control=LoopControl())
    assert learner.steps > 0 and next(learner.online.parameters()).device.type == src
    ckpt = Checkpointer(cfg, tmp_path / "run" / "checkpoint", learner, wiring, spaces)
    assert res.state is not None
    ckpt.save(res.state)

    cfg2, learner2, wiring2, spaces2 = _parts(dst)
    net = build_q_network(cfg2.network, spaces2[0], spaces2[2])
    manifest = verify(ckpt.dir, cfg2, spaces2[0], spaces2[2], net)  # device may differ: not a mismatch
    state = restore(manifest, learner2, wiring2)
    assert state.env_steps == res.env_steps and learner2.steps == learner.steps
    for (k, a), b in zip(learner.online.state_dict().items(), learner2.online.state_dict().values()):
        assert b.device.type == dst, k
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0)
    opt_state = next(iter(learner2.optimizer.state.values()))
    assert opt_state["exp_avg"].device.type == dst
    assert len(wiring2.replay) == len(wiring.replay)
    batch = wiring2.replay.sample(32, 0.5)
    prio, metrics = learner2.step(batch)  # it trains on where it now lives
    assert prio.shape == (32,) and metrics["loss"] == metrics["loss"]
