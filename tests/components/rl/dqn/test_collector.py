from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from components.config import load
from components.rl.dqn.collector import Collector
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.networks import build_q_network, get_flat_weights

STEPS = 150


@pytest.fixture(scope="module")
def collected():
    cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", ["collectors.envs_per_collector=2"])
    collector = Collector(cfg, index=1, obs_shape=(4,), n_actions=2)
    batch, stats = collector.run(STEPS)
    return cfg, collector, batch, stats


def test_shapes_and_counts(collected):
    cfg, collector, batch, stats = collected
    t = len(batch)
    assert batch.obs.shape == batch.next_obs.shape == (t, 4) and batch.obs.dtype == np.float32
    for name in ("action", "reward", "done", "n", "priority", "collector", "episode", "step", "truncated"):
        assert getattr(batch, name).shape == (t,), name
    assert stats.env_steps == STEPS * 2 == collector.env_steps
    assert stats.transitions == t
    # Every env step becomes one transition except the ≤ n − 1 still waiting in each env's window.
    pending = collector.nstep.pending
    assert t + pending == STEPS * 2 and pending <= 2 * (cfg.learner.n_step - 1)
    np.testing.assert_array_equal(batch.collector, 1)
    # Collector 1 of 2 with 2 envs each takes Ape-X ε_2, ε_3 of N = 4: 0.4^(1 + 7·2/3), 0.4^8
    np.testing.assert_allclose(collector.epsilons(), [0.4 ** (1 + 14 / 3), 0.4**8])
    assert stats.collector == 1 and stats.epsilon == pytest.approx((0.4 ** (1 + 14 / 3) + 0.4**8) / 2)


def test_rewards_are_discounted_n_step_sums(collected):
    cfg, _, batch, _ = collected
    gamma, n_step = cfg.learner.gamma, cfg.learner.n_step
    assert np.all((batch.n >= 1) & (batch.n <= n_step))
    # CartPole pays 1 per step (also on the step that ends it), so a window of n steps returns Σ_{k<n} γ^k.
    expected = np.array([sum(gamma**k for k in range(n)) for n in batch.n])
    np.testing.assert_allclose(batch.reward, expected, rtol=1e-6)
    # Only windows cut by the episode's end are shorter, and those are done (CartPole's 500-step limit
    # is not reached by these short episodes, so there are no truncations).
    assert not batch.truncated.any()
    np.testing.assert_array_equal(batch.n < n_step, batch.done & (batch.n < n_step))
    assert batch.done.sum() > 0 and (batch.n < n_step).sum() > 0


def test_windows_reconstruct_from_the_episode_stream(collected):
    cfg, _, batch, stats = collected
    n_step = cfg.learner.n_step
    by_episode: dict[int, dict[int, int]] = defaultdict(dict)
    for i, (ep, step) in enumerate(zip(batch.episode, batch.step)):
        assert step not in by_episode[int(ep)], "one transition per (episode, step)"
        by_episode[int(ep)][int(step)] = i
    finished_lengths = []
    for steps in by_episode.values():
        idx = [steps[s] for s in sorted(steps)]
        assert sorted(steps) == list(range(len(steps)))  # no step missing inside an episode
        for s, i in enumerate(idx):
            if s + n_step in steps:  # a full window: next_obs is the obs n steps later
                assert not batch.done[i] and batch.n[i] == n_step
                np.testing.assert_array_equal(batch.next_obs[i], batch.obs[steps[s + n_step]])
        if batch.done[idx[-1]]:  # a finished episode: its last min(L, n) windows share the final obs
            length = len(idx)
            tail = idx[-min(length, n_step) :]
            assert batch.done[tail].all() and not batch.done[idx[: length - len(tail)]].any()
            np.testing.assert_array_equal(batch.n[tail], np.arange(len(tail), 0, -1))
            assert all(np.array_equal(batch.next_obs[j], batch.next_obs[tail[0]]) for j in tail)
            finished_lengths.append(length)
    # The episode statistics count exactly the episodes that finished, with their lengths and returns.
    assert len(stats.returns) == len(stats.lengths) == len(finished_lengths) > 0
    assert sorted(stats.lengths) == sorted(finished_lengths)
    np.testing.assert_allclose(sorted(stats.returns), sorted(finished_lengths))  # reward 1 per step
    gamma = cfg.learner.gamma
    np.testing.assert_allclose(
        sorted(stats.mc_return), sorted((1 - gamma**L) / (1 - gamma) for L in finished_lengths)
    )


def test_initial_priorities_are_the_collectors_own_td_errors(collected):
    cfg, collector, batch, _ = collected
    assert np.all(batch.priority >= 0) and np.all(np.isfinite(batch.priority))
    q, q_next = collector._q(batch.obs), collector._q(batch.next_obs)  # what it acts on
    gamma = cfg.learner.gamma
    y = batch.reward + gamma ** batch.n.astype(np.float64) * (1 - batch.done) * q_next.max(1)
    np.testing.assert_allclose(
        batch.priority, np.abs(y - q[np.arange(len(batch)), batch.action]), rtol=1e-4, atol=1e-5
    )


def test_set_weights_reaches_the_acting_policy():
    cfg = load(DQNConfig, "configs/dqn/cartpole.yaml", ["collectors.envs_per_collector=2"])
    collector = Collector(cfg, index=0, obs_shape=(4,), n_actions=2)
    torch.manual_seed(123)
    other = build_q_network(cfg.network, (4,), 2)
    collector.set_weights(get_flat_weights(other))
    x = torch.randn(5, 4)
    with torch.no_grad():
        # What the collector acts on (the numpy network, for an MLP) is the sent network.
        np.testing.assert_allclose(collector._q(x.numpy()), other(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(collector.get_weights(), get_flat_weights(other))


PONG_SETTINGS = [
    "collectors.envs_per_collector=2",
    "env.max_episode_steps=160",  # raw frames (frame skip 4, up to 30 no-ops): 33–40-step episodes
    "replay.capacity=1000",
    "replay.min_size=64",
    "learner.batch_size=16",
]


@pytest.fixture(scope="module", params=["gymnasium", "ale_vector"])
def pong_pushes(request):
    """One Pong stream (same seeds, weights and ε draws) collected twice: frames once, whole stacks;
    with either Atari backend (ale-py's vector env pads a new stack with blank frames unless told)."""
    cfg = load(DQNConfig, "configs/dqn/pong.yaml", [*PONG_SETTINGS, f"atari.backend={request.param}"])
    pixel = Collector(cfg, index=1, obs_shape=(4, 84, 84), n_actions=6)
    naive = Collector(cfg, index=1, obs_shape=(4, 84, 84), n_actions=6, frames=False)
    runs = [(pixel.run(25), naive.run(25)) for _ in range(3)]
    return cfg, pixel, runs


def test_pong_pushes_send_each_frame_once_and_name_the_same_stacks(pong_pushes):
    """Frame ids rebuild the stacks a whole-stack collector sends, bit for bit, across pushes."""
    _, pixel, runs = pong_pushes
    frames, next_id, resets = [], 0, 0
    for (push, pstats), (whole, wstats) in runs:
        assert push.collector == 1 and push.generation == 0
        assert push.first_frame == next_id  # local ids continue across pushes
        next_id += len(push.frames)
        frames.append(push.frames)
        resets += len(wstats.returns)
        t = push.transitions
        assert t.obs.shape == (len(whole), 4) and t.obs.dtype == np.int64
        assert pstats.returns == wstats.returns and pstats.transitions == len(whole)
        known = np.concatenate(frames)  # every frame a transition names has been sent by now
        np.testing.assert_array_equal(known[t.obs], whole.obs)
        np.testing.assert_array_equal(known[t.next_obs], whole.next_obs)
        for name in ("action", "reward", "done", "n", "collector", "episode", "step", "truncated"):
            np.testing.assert_array_equal(getattr(t, name), getattr(whole, name), err_msg=name)
        # Initial priorities still come from Q on the full stacks.
        np.testing.assert_allclose(t.priority, whole.priority, rtol=1e-6)
    assert resets >= 2 and any(w.truncated.any() for (_, _), (w, _) in runs)  # episode ends were crossed
    # One frame per env step, one per reset: the first obs of every episode (2 initial, then 1 per end).
    assert next_id == 3 * 25 * 2 + 2 + resets == pixel.sent


def test_a_pong_push_is_about_an_eighth_of_whole_stacks(pong_pushes):
    import pickle

    _, _, runs = pong_pushes
    (push, _), (whole, _) = runs[1]
    pixel_bytes, whole_bytes = len(pickle.dumps(push, protocol=5)), len(pickle.dumps(whole, protocol=5))
    print(f"one push of {len(whole)} transitions: {whole_bytes} B as stacks, {pixel_bytes} B as frames")
    assert pixel_bytes < whole_bytes / 5


def test_an_mlp_collector_acts_without_importing_torch():
    """CartPole's collectors act with numpy Q-values: a collector actor's process never loads torch
    (about 2 s of its start-up, and its memory); only a frame collector's CNN does."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from components.config import load\n"
        "from components.rl.dqn.collector import Collector\n"
        "from components.rl.dqn.config import DQNConfig\n"
        "from components.rl.dqn.env_factory import check_spaces\n"
        "cfg = load(DQNConfig, 'configs/dqn/cartpole.yaml')\n"
        "shape, _, n = check_spaces(cfg)\n"
        "batch, _ = Collector(cfg, 0, shape, n).run(8)\n"
        "print(len(batch.obs) > 0, 'torch' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[4]
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "False"], proc.stdout + proc.stderr[-2000:]
