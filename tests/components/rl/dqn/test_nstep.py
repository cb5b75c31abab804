from __future__ import annotations

import numpy as np
import pytest

from components.rl.dqn.nstep import NStepAccumulator, Pending, SegmentNStep


def _push(acc, env, t, reward, terminated=False, truncated=False, next_obs=None):
    """Step t of ``env``: obs "e{env}s{t}", next obs "e{env}s{t+1}" unless given."""
    item = Pending(obs=f"e{env}s{t}", action=t % 2, reward=reward, step=t, q_taken=0.1 * t, episode=7)
    nxt = next_obs if next_obs is not None else f"e{env}s{t + 1}"
    return acc.push(env, item, nxt, terminated, truncated)


def _summary(out):
    return [(e.obs, round(e.ret, 10), e.next_obs, e.done, e.truncated, e.n, e.step) for e in out]


def test_windows_slide_then_flush_at_termination():
    """n = 3, γ = 0.9, rewards 1, 2, 3, 4, 5, the episode terminating on the fifth step."""
    acc = NStepAccumulator(num_envs=1, n=3, gamma=0.9)
    assert _push(acc, 0, 0, 1.0) == []
    assert _push(acc, 0, 1, 2.0) == []
    # 1 + 0.9·2 + 0.81·3 = 5.23
    assert _summary(_push(acc, 0, 2, 3.0)) == [("e0s0", 5.23, "e0s3", False, False, 3, 0)]
    # 2 + 0.9·3 + 0.81·4 = 7.94
    assert _summary(_push(acc, 0, 3, 4.0)) == [("e0s1", 7.94, "e0s4", False, False, 3, 1)]
    out = _push(acc, 0, 4, 5.0, terminated=True, next_obs="final")
    # Every pending step flushes, done, with what remains: 3 + 3.6 + 4.05; 4 + 0.9·5; 5.
    assert _summary(out) == [
        ("e0s2", 10.65, "final", True, False, 3, 2),
        ("e0s3", 8.5, "final", True, False, 2, 3),
        ("e0s4", 5.0, "final", True, False, 1, 4),
    ]
    assert out[1].action == 1 and out[1].q_taken == pytest.approx(0.3) and out[1].episode == 7
    # The window is empty again: a new episode starts from scratch.
    assert _push(acc, 0, 0, 1.0) == [] and len(acc.windows[0]) == 1


def test_truncation_flushes_bootstrapping_windows_with_the_final_observation():
    acc = NStepAccumulator(num_envs=2, n=3, gamma=0.9)
    # Env 1 runs alongside env 0 and is not disturbed by env 0's truncation.
    _push(acc, 1, 0, 10.0)
    _push(acc, 0, 0, 1.0)
    _push(acc, 1, 1, 10.0)
    out = _push(acc, 0, 1, 1.0, truncated=True, next_obs="cut")
    assert _summary(out) == [
        ("e0s0", 1.9, "cut", False, True, 2, 0),  # 1 + 0.9·1, bootstraps with γ² from "cut"
        ("e0s1", 1.0, "cut", False, True, 1, 1),
    ]
    assert _summary(_push(acc, 1, 2, 10.0)) == [("e1s0", 27.1, "e1s3", False, False, 3, 0)]  # 10 + 9 + 8.1
    # terminated and truncated together: a termination (no bootstrap), not a truncation
    out = _push(acc, 1, 3, 1.0, terminated=True, truncated=True, next_obs="end")
    assert [(e.done, e.truncated, e.n) for e in out] == [(True, False, 3), (True, False, 2), (True, False, 1)]


def test_one_step_windows_emit_immediately():
    acc = NStepAccumulator(num_envs=1, n=1, gamma=0.5)
    assert _summary(_push(acc, 0, 0, 2.0)) == [("e0s0", 2.0, "e0s1", False, False, 1, 0)]
    with pytest.raises(ValueError, match="n must be"):
        NStepAccumulator(1, 0, 0.9)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_segments_give_the_accumulators_transitions_in_its_order(n):
    """Random rewards, terminations and truncations in 3 envs, cut into segments of random lengths
    (shorter and longer than n): the vectorised windows equal the per-step accumulator's, in order."""
    rng = np.random.default_rng(n)
    envs, steps, gamma = 3, 400, 0.9
    reward = rng.normal(size=(steps, envs))
    terminated = rng.random((steps, envs)) < 0.06
    truncated = (rng.random((steps, envs)) < 0.04) & ~terminated
    ref = NStepAccumulator(envs, n, gamma)
    expected = []
    for t in range(steps):
        for e in range(envs):
            item = Pending((t, e), 0, float(reward[t, e]), t, 0.0)
            for w in ref.push(e, item, t, bool(terminated[t, e]), bool(truncated[t, e])):
                expected.append((w.obs, w.next_obs, w.n, w.done, w.truncated, w.ret))
    seg = SegmentNStep(envs, n, gamma)
    got, t0 = [], 0
    while t0 < steps:
        t1 = min(steps, t0 + int(rng.integers(1, 2 * n + 3)))
        first = t0 - seg.carried  # the segment's row 0 is this step
        w = seg.process(reward[t0:t1], terminated[t0:t1], truncated[t0:t1])
        for k in range(len(w.start)):
            start, e, end = first + int(w.start[k]), int(w.env[k]), first + int(w.end[k])
            got.append(((start, e), end, int(w.n[k]), bool(w.done[k]), bool(w.truncated[k]), w.ret[k]))
        t0 = t1
    assert [g[:5] for g in got] == [x[:5] for x in expected]
    np.testing.assert_allclose([g[5] for g in got], [x[5] for x in expected], rtol=1e-12)
    assert seg.pending == sum(len(q) for q in ref.windows) <= envs * (n - 1)
