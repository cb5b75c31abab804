from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from components.replay.frame_storage import FrameStorage
from components.rl.dqn.nstep import NStepAccumulator, Pending


def _frame(i: int) -> np.ndarray:
    return np.full((3, 3), i, dtype=np.uint8)


def test_overwriting_a_frame_invalidates_the_transitions_that_need_it_by_hand():
    fs = FrameStorage(capacity=5, stack=2, frame_shape=(3, 3))
    ids = [fs.reset(0, _frame(0))]  # [0, 0]: the reset frame pads the stack
    for i in range(1, 5):
        ids.append(fs.add_step(0, _frame(i)))  # [0, 1], [1, 2], [2, 3], [3, 4]
    assert [s.tolist() for s in ids] == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4]]
    slots = fs.add(np.stack(ids[:4]), np.stack(ids[1:]))
    np.testing.assert_array_equal(slots, [0, 1, 2, 3])  # the slot of each obs's newest frame
    assert len(fs) == 4 and fs.pop_invalidated().size == 0
    obs, nxt = fs.stacks(np.array([1, 3]))
    np.testing.assert_array_equal(obs[:, :, 0, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(nxt[:, :, 0, 0], [[1, 2], [3, 4]])
    # Frame 5 goes into slot 0 over frame 0, which the stacks [0, 0] (slot 0) and [0, 1] (slot 1) need.
    fs.add_step(0, _frame(5))
    assert sorted(fs.pop_invalidated().tolist()) == [0, 1]
    np.testing.assert_array_equal(fs.valid(np.arange(5)), [False, False, True, True, False])
    with pytest.raises(ValueError, match="no valid transition"):
        fs.stacks(np.array([1]))
    assert fs.add(ids[1], ids[2])[0] == -1  # its frame 0 is gone: dropped
    obs, _ = fs.stacks(np.array([2]))
    np.testing.assert_array_equal(obs[0, :, 0, 0], [1, 2])
    with pytest.raises(ValueError, match="reset/add_step"):
        fs.add(np.array([3, 4]), np.array([4, 6]))  # frame 6 does not exist yet


def _pong(max_frames: int) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=1, max_episode_steps=max_frames)  # the limit counts raw frames
    env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, noop_max=0)
    return gym.wrappers.FrameStackObservation(env, 4)


def test_rebuilt_stacks_equal_a_real_pong_stream_also_after_wrap_around():
    """Two Pong envs (4-frame stacks, 3-step windows) into a large and a small (wrapping) storage."""
    steps, n_step, stack = 300, 3, 4
    envs = [_pong(160), _pong(220)]  # 40- and 55-step episodes: several truncations, out of phase
    big = FrameStorage(capacity=2_000, stack=stack, num_envs=2)
    small = FrameStorage(capacity=97, stack=stack, num_envs=2)
    acc = NStepAccumulator(num_envs=2, n=n_step, gamma=0.99)
    naive_all: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # every transition, by its obs's newest id
    naive_small: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # what the small storage's slots should hold
    rng = np.random.default_rng(0)

    def frames_in(storages, env, obs, first):
        ids = [s.reset(env, obs[-1]) if first else s.add_step(env, obs[-1]) for s in storages]
        np.testing.assert_array_equal(ids[0], ids[1])  # same write order: same absolute ids
        for slot in small.pop_invalidated():
            assert not small.valid(np.array([slot]))[0]
            naive_small.pop(int(slot))
        return ids[0]

    current = []
    for e, env in enumerate(envs):
        obs, _ = env.reset(seed=e)
        current.append((frames_in((big, small), e, obs, True), obs))
    resets = 2
    for t in range(steps):
        for e, env in enumerate(envs):
            obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            nxt = (frames_in((big, small), e, obs, False), obs)  # the final obs when the episode ended
            item = Pending(obs=current[e], action=0, reward=float(reward), step=t, q_taken=0.0)
            for tr in acc.push(e, item, nxt, terminated, truncated):
                (o_ids, o_pix), (n_ids, n_pix) = tr.obs, tr.next_obs
                assert big.add(o_ids, n_ids)[0] >= 0
                naive_all[int(o_ids[-1])] = (o_pix, n_pix)
                slot = int(small.add(o_ids, n_ids)[0])
                assert slot >= 0
                naive_small[slot] = (o_pix, n_pix)
            if terminated or truncated:
                obs, _ = env.reset()
                resets += 1
                nxt = (frames_in((big, small), e, obs, True), obs)
            current[e] = nxt
        if t % 25 == 24 or t == steps - 1:  # the small ring's valid slots are exactly the tracked ones
            valid = np.flatnonzero(small.valid(np.arange(small.capacity)))
            assert set(valid.tolist()) == set(naive_small)
            o, n = small.stacks(valid)
            np.testing.assert_array_equal(o, np.stack([naive_small[int(s)][0] for s in valid]))
            np.testing.assert_array_equal(n, np.stack([naive_small[int(s)][1] for s in valid]))

    assert resets >= 2 + 5 and small.written > 5 * small.capacity  # episode ends, and many laps of the ring
    assert len(small) >= 0.8 * small.capacity  # few slots lost: final frames, pending windows, look-back
    # The big storage never wrapped: every emitted transition rebuilds exactly. A transition is named by
    # its obs's newest frame id (the slot it lives in), unique per transition.
    assert len(big) == len(naive_all)
    slots = np.flatnonzero(big.valid(np.arange(big.capacity)))
    assert sorted(big.obs_ids[slots, -1].tolist()) == sorted(naive_all)
    o, n = big.stacks(slots)
    np.testing.assert_array_equal(o, np.stack([naive_all[int(i)][0] for i in big.obs_ids[slots, -1]]))
    np.testing.assert_array_equal(n, np.stack([naive_all[int(i)][1] for i in big.obs_ids[slots, -1]]))
    # The comparison can tell frames apart: the paddles and ball move, so most stacks are distinct.
    assert len({x[0].tobytes() for x in naive_all.values()}) > 0.8 * len(naive_all)
    # Memory: one frame per env step plus one per reset, against 2·4 frames per transition.
    assert big.written == 2 * steps + resets
    frame_bytes = 84 * 84
    stored = big.written * frame_bytes
    naive = len(naive_all) * 2 * stack * frame_bytes
    assert big.written <= 1.05 * len(naive_all) + resets
    assert stored / naive < 0.14
    # Per-transition overhead beyond the frames is the index bookkeeping: 2·S ids, a flag, S dependents.
    overhead = big.nbytes - big.frames.nbytes
    assert overhead / big.capacity == 8 * (1 + 2 * stack + stack) + 1
