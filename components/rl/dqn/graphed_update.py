"""The learner's update captured once as a CUDA graph and replayed: one launch instead of ~100.

A small DQN update is launch-bound on a GPU (~100 kernels of ~9 µs each; DESIGN.md measured 348 eager
against 3,208 graphed updates/s for the CartPole MLP). This follows PyTorch's whole-network capture
recipe (CUDA semantics notes, "Whole-network capture"): static input tensors; warm-up iterations on a
side stream before capture (they create Adam's state, cuBLAS/cuDNN handles and autotuning choices);
``optimizer.zero_grad(set_to_none=True)`` right before capture, so that backward allocates the
gradients from the graph's private pool and every replay refills them in place; Adam built with
``capturable=True``; then ``torch.cuda.graph`` around forward, loss, backward, clip, step.

What differs from the recipe, and why:

- the warm-up iterations are real updates, of the first batches the learner is given (eager, on the
  side stream, from the static inputs); capturing executes nothing, so the batch the graph is captured
  on is then replayed once. A graphed learner thus takes the very updates an eager one takes, step for
  step (the same kernels; see ``tests/components/rl/dqn/test_graphed_update.py``);
- a batch of another shape than the captured one (a test's, a benchmark's) runs eagerly, without
  disturbing the graph; the replay never reads ``.grad`` attributes, only the gradient buffers it
  captured;
- :meth:`reset` drops the graph after anything replaced tensors it captured (a checkpoint loaded
  into the optimizer builds new state tensors); the next updates warm up and capture again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from components.rl.dqn.staging import consume
from components.rl.dqn.update import UpdateInputs


class GraphedUpdate:
    """``update`` (see :class:`~components.rl.dqn.update.DQNUpdate`) replayed from a CUDA graph.

    ``zero_grad`` sets the gradients to None right before capture; ``warmup`` eager updates run first.
    Each call returns a fresh copy of the graph's static output, which the next replay overwrites.
    """

    def __init__(
        self, update: Callable[[UpdateInputs], torch.Tensor], zero_grad: Callable[[], None], warmup: int = 3
    ) -> None:
        self.update, self.zero_grad, self.warmup = update, zero_grad, warmup
        self.static: UpdateInputs | None = None
        self.out: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self.side: torch.cuda.Stream | None = None

    def reset(self) -> None:
        """Capture again (after warm-up) on the next calls."""
        self.graph, self.out, self.warm = None, None, 0

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def _fits(self, x: UpdateInputs) -> bool:
        if self.static is None:
            self.static = UpdateInputs(torch.empty_like(x.obs_pair), torch.empty_like(x.scalars))
        s = self.static
        return (s.obs_pair.shape, s.obs_pair.dtype, s.scalars.shape) == (
            x.obs_pair.shape,
            x.obs_pair.dtype,
            x.scalars.shape,
        )

    def __call__(self, x: UpdateInputs) -> torch.Tensor:
        if not self._fits(x):
            with warnings.catch_warnings():  # capturable Adam warns when stepped outside a graph
                warnings.simplefilter("ignore", UserWarning)
                return consume(x, lambda: self.update(x))
        static = self.static
        assert static is not None
        consume(x, lambda: (static.obs_pair.copy_(x.obs_pair), static.scalars.copy_(x.scalars)))
        if self.graph is None and self.warm < self.warmup:
            return self._warm_up(static)
        if self.graph is None:
            self._capture(static)
        assert self.graph is not None and self.out is not None
        self.graph.replay()
        return self.out.clone()

    def _warm_up(self, static: UpdateInputs) -> torch.Tensor:
        """One eager update on a side stream, as the recipe warms up (it counts as a real update)."""
        self.warm += 1
        main = torch.cuda.current_stream()
        if self.side is None:
            self.side = torch.cuda.Stream()
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = self.update(static)
        main.wait_stream(self.side)
        out.record_stream(main)  # made on the side stream, read on the main one
        return out

    def _capture(self, static: UpdateInputs) -> None:
        self.zero_grad()  # backward inside the capture allocates .grad from the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.out = self.update(static)
        self.graph = graph
