from __future__ import annotations

import numpy as np
import pytest

from components.rl.dqn.epsilon import apex_epsilons


def test_apex_epsilons_follow_the_formula():
    eps = apex_epsilons(8)
    # N = 8: 7·i/(N − 1) = i, so ε_i = 0.4^(1 + i) exactly
    np.testing.assert_allclose(eps, 0.4 ** (1 + np.arange(8)))
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4**8)
    eps5 = apex_epsilons(5)
    np.testing.assert_allclose(eps5, [0.4 ** (1 + 7 * i / 4) for i in range(5)])
    assert np.all(np.diff(eps5) < 0)


def test_one_actor_gets_the_base():
    np.testing.assert_array_equal(apex_epsilons(1), [0.4])
    np.testing.assert_allclose(apex_epsilons(3, base=0.5, alpha=2.0), [0.5, 0.25, 0.125])
