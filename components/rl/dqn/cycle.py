"""The learner's cycle: sample k batches → k updates → new priorities (read back once) → publish when due.

Ape-X runs it in two places: in the driver (:class:`InProcessLearner`, fed by the wiring, which
samples locally or from the replay actor) and inside a learner actor on a GPU
(``pipelines/distributed/learner_actor.py``, fed straight by the replay actor). Both call
:func:`learner_cycle`, so there is one order of operations to test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from components.replay.batch import SampledBatch
from components.rl.dqn.learner import Learner


class BatchSource(Protocol):
    """Where a learner's batches come from and its new priorities go back to."""

    def sample(self, count: int, beta: float) -> list[SampledBatch]: ...
    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None: ...


class Feed(BatchSource, Protocol):
    """A batch source that also delivers the learner's weights to the collectors."""

    def publish(self, weights: Any) -> None: ...


def learner_cycle(
    learner: Learner,
    source: BatchSource,
    count: int,
    beta: float,
    publish_every: int,
    publish: Callable[[], None],
) -> list[dict[str, float]]:
    """Train on ``count`` batches from ``source``; send their |δ| back in one call.

    The updates' results stay on the learner's device until all ``count`` are queued, then come back
    in one transfer (on a GPU, k updates run without waiting for the host; on the CPU the numbers are
    those of k separate steps). Each batch's copy to a GPU overlaps the update before it
    (``Learner.stage``). ``publish`` is called right after every ``publish_every``-th learner step.
    Returns the metrics of each update; an empty list when the source had nothing to give (a replay
    that refills).
    """
    batches = source.sample(count, beta)
    if not batches:
        return []
    outs = []
    for x in learner.stage(batches):
        outs.append(learner.update(x))
        if learner.steps % publish_every == 0:
            publish()
    prio, metrics = learner.to_host(outs)  # the call's one device→host transfer
    source.update_priorities(np.concatenate([b.slots for b in batches]), prio)
    return metrics


class InProcessLearner:
    """A :class:`Learner` in the driver, trained through :func:`learner_cycle` on what ``feed`` samples.

    It has the surface the DQN loop drives (``train``, ``drain``, ``stop``, weights, state) that a
    learner in an actor has too, so the loop never asks where its learner lives.
    """

    def __init__(self, learner: Learner, feed: Feed, publish_every: int) -> None:
        self.learner, self.feed, self.publish_every = learner, feed, publish_every

    @property
    def steps(self) -> int:
        return self.learner.steps

    @property
    def device(self) -> torch.device:
        return self.learner.device

    @property
    def online(self) -> nn.Module:
        return self.learner.online

    def get_weights(self) -> np.ndarray:
        return self.learner.get_weights()

    def train(self, count: int, beta: float) -> list[dict[str, float]]:
        return learner_cycle(
            self.learner,
            self.feed,
            count,
            beta,
            self.publish_every,
            lambda: self.feed.publish(self.learner.get_weights()),
        )

    def drain(self) -> None:
        """Nothing is ever queued: every ``train`` call is finished when it returns."""

    def stop(self) -> None:
        """Nothing to stop: the learner lives in this process."""

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)
