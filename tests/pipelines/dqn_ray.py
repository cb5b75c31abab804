"""A DQN run on the test session's Ray, built as ``run_dqn`` builds it, with its parts in reach."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from components.rl.dqn.config import DQNConfig
from components.rl.dqn.learner import Learner
from pipelines.dqn.preflight import DQNSetup
from pipelines.dqn.run import build_learner, build_wiring
from pipelines.dqn.state import LoopLearner


@contextmanager
def ray_dqn(cfg: DQNConfig) -> Iterator[tuple[DQNSetup, Any, LoopLearner]]:
    """``(setup, wiring, learner)``: a ``RayWiring`` and the learner ``cfg`` places (in this process,
    or in its own actor), both stopped on the way out, for tests that look inside a run."""
    from pipelines.distributed.ray_wiring import RayWiring

    setup = DQNSetup.from_config(cfg)
    wiring = build_wiring(cfg, setup)
    assert isinstance(wiring, RayWiring)
    learner: LoopLearner | None = None
    try:
        local = None if cfg.learner_in_actor() else Learner(setup.net, cfg.learner)
        learner = build_learner(cfg, setup, wiring, local)
        yield setup, wiring, learner
    finally:
        if learner is not None:
            learner.stop()
        wiring.stop()
