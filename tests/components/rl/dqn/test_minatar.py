"""MinAtar through adl's DQN parts: frames channels-first and boolean from the env to the CNN, the network
sized by conv arithmetic, the replay storing one byte a cell, evaluation at ε = 0.01."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from components.config import ConfigError, load
from components.nets.conv_arithmetic import conv_output_size
from components.replay.factory import make_replay
from components.rl.dqn.collector import Collector
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import check_spaces, env_fn, vector_env
from components.rl.dqn.evaluator import Evaluator
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import build_q_network
from components.rl.envs import check_env_id

REPO = Path(__file__).resolve().parents[4]
MINATAR = str(REPO / "configs/dqn/minatar.yaml")
# Channels and minimal action sets of the games the config is tuned on (MinAtar 1.0.15).
GAMES = {"Breakout": (4, 3), "Freeway": (7, 3), "Seaquest": (10, 6)}


def minatar_cfg(game: str, *sets: str) -> DQNConfig:
    return load(DQNConfig, MINATAR, [f"env.id=MinAtar/{game}-v1", *sets])


@pytest.mark.parametrize("game", GAMES)
def test_frames_are_channels_first_booleans_and_the_cnn_is_sized_for_them(game):
    channels, n_actions = GAMES[game]
    cfg = minatar_cfg(game)
    assert check_spaces(cfg) == ((channels, 10, 10), np.dtype(bool), n_actions)
    # The wrapped env's frame is the raw game's HWC frame transposed, value for value.
    raw = gym.make(f"MinAtar/{game}-v1", sticky_action_prob=0.1, difficulty_ramping=True)
    wrapped = env_fn(cfg, 0)()
    for env in (raw, wrapped):
        env.reset(seed=3)
    for t in range(30):
        a = t % n_actions
        hwc, *_ = raw.step(a)
        chw, *_ = wrapped.step(a)
        assert chw.dtype == np.bool_ and chw.flags.c_contiguous
        np.testing.assert_array_equal(chw, np.transpose(hwc, (2, 0, 1)))
    # Conv arithmetic: 10×10 → 3×3 conv, stride 1 → 8×8; 16 × 8 × 8 = 1,024 features into 128 units.
    net = build_q_network(cfg.network, (channels, 10, 10), n_actions)
    side = conv_output_size(10, 3, 1)
    assert side == 8 and net.conv_out_shape == (16, side, side)
    assert net.head.value[0].in_features == 16 * side * side and net.head.value[0].out_features == 128


def test_booleans_reach_the_cnn_as_b_c_10_10_from_collector_replay_and_learner():
    """The collector acts on [E, C, 10, 10] bool, the replay keeps bool (one byte a cell), and the learner's
    network gets [B, C, 10, 10] bool, which it reads as 0/1 floats (not scaled by 1/255 like ALE pixels)."""
    cfg = minatar_cfg("Seaquest", "collectors.envs_per_collector=4", "learner.batch_size=8")
    shape, dtype, n_actions = check_spaces(cfg)
    collector = Collector(cfg, 0, shape, n_actions)
    seen: list[tuple[tuple[int, ...], torch.dtype]] = []
    collector.torch_q.policy.register_forward_pre_hook(
        lambda m, args: seen.append((tuple(args[0].shape), args[0].dtype))
    )
    batch, stats = collector.run(16)
    assert seen[0] == ((4, 10, 10, 10), torch.bool)
    replay = make_replay(cfg.replay, shape, dtype)
    replay.add(batch)
    assert replay.obs.dtype == np.bool_ and replay.obs.nbytes == cfg.replay.capacity * 10 * 10 * 10
    sample = replay.sample(8)
    assert sample.obs.shape == (8, 10, 10, 10) and sample.obs.dtype == np.bool_
    net = build_q_network(cfg.network, shape, n_actions)
    learner = Learner(net, cfg.learner)
    inputs: list[tuple[tuple[int, ...], torch.dtype]] = []
    learner.online.register_forward_pre_hook(
        lambda m, args: inputs.append((tuple(args[0].shape), args[0].dtype))
    )
    prio, metrics = learner.step(sample)
    assert inputs and all(x == ((8, 10, 10, 10), torch.bool) for x in inputs)
    assert prio.shape == (8,) and np.isfinite(metrics["loss"])
    # 0/1 in, as floats: the network's output for a bool frame equals that for the same frame as float.
    with torch.no_grad():
        x = torch.as_tensor(sample.obs)
        torch.testing.assert_close(learner.online(x), learner.online(x.float()))


def test_minatar_ids_register_and_a_typo_is_refused_with_the_closest_ids():
    check_env_id("MinAtar/Freeway-v1")
    with pytest.raises(ConfigError, match="MinAtar/Breakout-v1"):
        check_env_id("MinAtar/Breakot-v1")


def test_convs_that_do_not_fit_10x10_frames_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"network.convs: \[\[16, 11, 1\]\] do not fit 10×10 frames"):
        build_q_network(minatar_cfg("Breakout", "network.convs=[[16, 11, 1]]").network, (4, 10, 10), 3)
    with pytest.raises(ConfigError, match=r"network.convs\[0\]: \[16, 3\] is not a conv layer"):
        minatar_cfg("Breakout", "network.convs=[[16, 3]]")


def test_evaluation_epsilon_takes_random_actions_at_that_rate():
    """A network that always pushes CartPole left ends every episode in ~10 steps; with ε = 1 every action
    is random and episodes last ~22 steps on average."""

    class Left(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[1.0, 0.0]]).repeat(obs.shape[0], 1)

    def mean_return(eps: float) -> float:
        cfg = load(
            DQNConfig, str(REPO / "configs/dqn/cartpole.yaml"), ["eval.episodes=40", f"eval.epsilon={eps}"]
        )
        return Evaluator(cfg).run(Left(), torch.device("cpu"))

    greedy, random = mean_return(0.0), mean_return(1.0)
    assert greedy < 12 and random > 16


def test_vector_env_of_minatar_resets_finished_games_in_the_same_step():
    cfg = minatar_cfg("Breakout")
    envs = vector_env(cfg, 2, seed=0)
    obs, _ = envs.reset(seed=0)
    for _ in range(2000):
        obs, _, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64))
        if term.any():
            e = int(np.flatnonzero(term)[0])
            assert info["final_obs"][e].shape == (4, 10, 10) and obs.dtype == np.bool_
            break
    else:
        pytest.fail("no Breakout game ended in 2,000 steps of one action")
    envs.close()


def test_a_replay_of_boolean_frames_round_trips_through_its_arrow_snapshot(tmp_path):
    from components.replay.snapshot import read_replay, write_replay

    cfg = minatar_cfg(
        "Freeway", "collectors.envs_per_collector=2", "replay.capacity=512", "replay.min_size=256"
    )
    shape, dtype, n_actions = check_spaces(cfg)
    batch, _ = Collector(cfg, 0, shape, n_actions).run(40)
    replay = make_replay(cfg.replay, shape, dtype)
    replay.add(batch)
    write_replay(replay, tmp_path / "replay.arrow", "none")
    back = make_replay(cfg.replay, shape, dtype)
    read_replay(back, tmp_path / "replay.arrow")
    n = len(replay)  # 2 envs × 40 steps, less the 3-step windows still open
    assert back.obs.dtype == np.bool_ and len(back) == n and n >= 2 * (40 - 2)
    np.testing.assert_array_equal(back.obs[:n], replay.obs[:n])
    np.testing.assert_array_equal(back.next_obs[:n], replay.next_obs[:n])
    assert replay.obs[:n].any()  # real frames, not an all-false buffer
