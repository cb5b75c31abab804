"""The MLP Q-network in numpy alone, for collectors that act on vector observations.

A collector evaluates a handful of observations per step, where torch's per-operator overhead is most
of the cost (``NumpyMLP`` measured that), and it only ever reads weights it is sent. Holding them in
numpy arrays laid out exactly as the torch network's flat weights (``networks.get_flat_weights``:
every floating-point state-dict entry, in order) lets such a collector skip importing torch at all:
on 2 cores that is a second of CPU per collector process at start-up, while everything else starts.
"""

from __future__ import annotations

import numpy as np

from components.rl.dqn.config import NetworkConfig


class NumpyQNetwork:
    """Q(s, ·) = head(body(s)) of :class:`~components.nets.qnets.MLPQNetwork`, on weights set from the
    learner's flat vector. Initialised as torch initialises ``nn.Linear`` (uniform ±1/√fan_in), from
    ``seed``, so that a collector acting before the first publish acts on a random network."""

    def __init__(self, cfg: NetworkConfig, obs_dim: int, n_actions: int, seed: int = 0) -> None:
        widths = [obs_dim, *cfg.hidden]
        self.body = [self._linear(i, o) for i, o in zip(widths[:-1], widths[1:])]
        head_in, hh = widths[-1], cfg.head_hidden
        self.dueling = cfg.dueling
        if cfg.dueling:  # state-dict order: head.value.*, then head.advantage.*
            self.value = [self._linear(head_in, hh), self._linear(hh, 1)]
            self.advantage = [self._linear(head_in, hh), self._linear(hh, n_actions)]
            head = [*self.value, *self.advantage]
        else:
            self.value, self.advantage = [], [self._linear(head_in, hh), self._linear(hh, n_actions)]
            head = self.advantage
        # torch's layout: weight [out, in] then bias [out], layer after layer.
        self.entries = [a for w, b in [*self.body, *head] for a in (w, b)]
        self.size = sum(a.size for a in self.entries)
        rng = np.random.default_rng(seed)
        for w, b in [*self.body, *head]:
            bound = 1.0 / np.sqrt(w.shape[1])
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)

    @staticmethod
    def _linear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n_out, n_in), dtype=np.float32), np.zeros(n_out, dtype=np.float32)

    def set_weights(self, flat: np.ndarray) -> None:
        if flat.shape != (self.size,):
            raise ValueError(f"weight vector has {flat.shape} entries; this network needs ({self.size},)")
        offset = 0
        for a in self.entries:
            a[...] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size

    def get_weights(self) -> np.ndarray:
        return np.concatenate([a.reshape(-1) for a in self.entries])

    @staticmethod
    def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], relu_last: bool) -> np.ndarray:
        for i, (w, b) in enumerate(layers):
            x = x @ w.T + b
            if relu_last or i < len(layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        h = self._mlp(np.asarray(obs, dtype=np.float32), self.body, relu_last=True)
        a = self._mlp(h, self.advantage, relu_last=False)
        if not self.dueling:
            return a
        return self._mlp(h, self.value, relu_last=False) + a - a.mean(axis=1, keepdims=True)
