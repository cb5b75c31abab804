"""A replay of stacked Atari frames that stores each 84×84 frame once and rebuilds stacks by index.

Stored whole, a transition of 4-frame stacks holds 8 frames (56 KB); consecutive transitions share
7 of them. Here the frames go into a :class:`FrameStorage` ring (one frame ≈ one env step) and a
transition keeps the ids of its two stacks, so a transition costs about one frame plus ~100 bytes
of ids and columns: ~7.2 KB instead of ~56.5 KB.

Collectors send :class:`PixelTransitions`: the frames new in that push, numbered by the collector,
and the transitions as stacks of those numbers. The replay writes a push's frames contiguously and
keeps one (local → replay id) segment per push (:class:`FrameIdMap`). A transition lives in the
slot of its obs's newest frame, so writing frames overwrites transitions; the frame storage also
reports the transitions whose stacks reach back into an overwritten frame, and those slots get
priority 0 (never drawn by the sum tree) and are skipped by uniform sampling. Priority updates from
the learner for slots that died in between are dropped for the same reason.
"""

from __future__ import annotations

import numpy as np

from components.replay.batch import PixelTransitions
from components.replay.buffer import ReplayBase, ReplayConfig
from components.replay.frame_ids import FrameIdMap
from components.replay.frame_storage import FrameStorage


class PixelReplayBuffer(ReplayBase):
    def __init__(
        self, cfg: ReplayConfig, stack: int, frame_shape: tuple[int, ...] = (84, 84), seed: int = 0
    ) -> None:
        super().__init__(cfg, seed)
        self.frames = FrameStorage(cfg.capacity, stack, frame_shape=frame_shape)
        self.frame_ids = FrameIdMap()
        self.dropped = 0  # transitions whose frames were unknown or already overwritten on arrival

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (self.frames.stack, *self.frames.frames.shape[1:])

    @property
    def nbytes(self) -> int:
        """Bytes of everything kept per slot: frames, ids, columns, sum tree."""
        columns = (self.action, self.reward, self.done, self.truncated, self.n, self.collector)
        tree = self.tree.tree.nbytes if self.tree is not None else 0
        return self.frames.nbytes + sum(a.nbytes for a in (*columns, self.episode, self.step)) + tree

    def add(self, batch: PixelTransitions) -> np.ndarray:
        """Store a push's frames, then its transitions; returns their slots (−1 for dropped ones)."""
        key = (int(batch.collector), int(batch.generation))
        if len(batch.frames):
            ids = self.frames.write(batch.frames)
            self.frame_ids.register(key, int(batch.first_frame), int(ids[0]), len(ids))
            self._kill(self.frames.pop_invalidated())
        t = batch.transitions
        slots = np.full(len(t), -1, dtype=np.int64)
        if len(t):
            obs = self.frame_ids.lookup(key, t.obs)  # [B, S] replay ids, −1 where unknown
            nxt = self.frame_ids.lookup(key, t.next_obs)
            known = np.flatnonzero((obs >= 0).all(axis=1) & (nxt >= 0).all(axis=1))
            slots[known] = self.frames.add(obs[known], nxt[known])
            kept = np.flatnonzero(slots >= 0)
            self._store(slots[kept], type(t)(*(x[kept] for x in t)))
            self.dropped += len(t) - len(kept)
        self.frame_ids.prune(self.frames.oldest_id)
        self.size = len(self.frames)
        self.inserts += len(t)
        return slots

    def _kill(self, slots: np.ndarray) -> None:
        """Slots whose transition is gone: never drawn again until a new one arrives there."""
        if self.tree is not None and len(slots):
            self.tree.set(slots, np.zeros(len(slots)))

    def valid_slots(self) -> np.ndarray:
        """Slots holding a live transition, in slot order."""
        return np.flatnonzero(self.frames.valid(np.arange(self.cfg.capacity)))

    def _observations(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.frames.stacks(idx)

    def _uniform(self, batch_size: int) -> np.ndarray:
        """Rejection sampling over the written slots: most hold a transition, so a redraw or two does."""
        high = min(self.frames.written, self.cfg.capacity)
        idx = self.rng.integers(0, high, batch_size)
        for _ in range(16):
            bad = np.flatnonzero(~self.frames.valid(idx))
            if len(bad) == 0:
                return idx
            idx[bad] = self.rng.integers(0, high, len(bad))
        bad = ~self.frames.valid(idx)  # a nearly empty ring: draw the rest from the live slots
        idx[bad] = self.rng.choice(self.valid_slots(), int(bad.sum()))
        return idx

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        """As for any replay, but only for slots still live (the learner may answer late)."""
        idx = np.asarray(idx, dtype=np.int64)
        live = self.frames.valid(idx)
        super().update_priorities(idx[live], np.asarray(priorities)[live])
