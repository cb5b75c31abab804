"""Pixel replay that stores each frame once and rebuilds stacked observations by index.

A transition of stacked Atari frames holds obs [S, 84, 84] and next_obs [S, 84, 84]: stored naively
that is 2·S = 8 copies of frames that consecutive transitions share. Here every frame is written
once into a ring, and a transition keeps only the absolute ids of the S frames of its obs and of its
next_obs (2·S int64 instead of 2·S·7056 bytes). ``stacks(idx)`` gathers the frames back.

One ring, one capacity: a transition lives in the slot of its obs's newest frame (the frame the
agent acted on), so transitions and frames share the capacity accounting. Writing a frame into a slot
therefore overwrites that slot's transition first; a transition whose obs stack reaches back into an
overwritten frame (the oldest ids are overwritten first, and next_obs frames are always newer than
the obs's oldest) is invalidated at the same write. Frames written ≈ env steps + one reset frame per
episode; slots of final frames (no action taken from them) hold no transition.

Episode starts are padded as gymnasium's ``FrameStackObservation`` does by default
(``padding_type="reset"``): the reset frame is repeated, so the first stack of an episode is
[f0, f0, f0, f0], then [f0, f0, f0, f1], ...

A collector calls ``reset(env, frame)`` / ``add_step(env, frame)`` with the newest 84×84 frame and
gets back the ids of the current stack [S]; those id arrays travel through the n-step accumulator in
place of the pixels, and ``add(obs_ids, next_ids)`` stores the emitted transitions. A prioritized
replay keyed by these slots calls ``pop_invalidated()`` after adding frames and zeroes those
slots' priorities.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameStorage:
    def __init__(
        self, capacity: int, stack: int, num_envs: int = 1, frame_shape: tuple[int, ...] = (84, 84)
    ) -> None:
        if capacity < stack + 1 or stack < 1 or num_envs < 1:
            raise ValueError(
                f"need stack >= 1, num_envs >= 1, capacity > stack; got {capacity}, {stack}, {num_envs}"
            )
        self.capacity, self.stack = capacity, stack
        self.frames = np.zeros((capacity, *frame_shape), dtype=np.uint8)  # [C, H, W]
        self.frame_id = np.full(capacity, -1, dtype=np.int64)  # absolute id of the frame in each slot
        self.obs_ids = np.full((capacity, stack), -1, dtype=np.int64)  # [C, S] per transition
        self.next_ids = np.full((capacity, stack), -1, dtype=np.int64)  # [C, S]
        self.has_transition = np.zeros(capacity, dtype=bool)
        # Transitions whose obs stack starts at the frame in each slot: at most S of them (a reset frame
        # pads the first S stacks of its episode; any other frame is the oldest of one stack).
        self.dependents = np.full((capacity, stack), -1, dtype=np.int64)
        self.written = 0  # frames ever written; the live ids are [written − capacity, written)
        self.history: list[deque[int]] = [deque(maxlen=stack) for _ in range(num_envs)]
        self._invalidated: list[int] = []

    def __len__(self) -> int:
        return int(self.has_transition.sum())

    @property
    def oldest_id(self) -> int:
        return max(0, self.written - self.capacity)

    @property
    def nbytes(self) -> int:
        arrays = (
            self.frames,
            self.frame_id,
            self.obs_ids,
            self.next_ids,
            self.has_transition,
            self.dependents,
        )
        return sum(a.nbytes for a in arrays)

    def _write(self, frame: np.ndarray) -> int:
        """Write one frame at the ring's head, invalidating the transitions that needed the old one."""
        slot = self.written % self.capacity
        old = self.frame_id[slot]
        if old >= 0:
            dead = [slot] + [d for d in self.dependents[slot] if d >= 0 and self.obs_ids[d, 0] == old]
            for d in dead:
                if self.has_transition[d]:
                    self.has_transition[d] = False
                    self._invalidated.append(int(d))
        self.dependents[slot] = -1
        self.frames[slot] = frame
        self.frame_id[slot] = self.written
        self.written += 1
        return self.written - 1

    def write(self, frames: np.ndarray) -> np.ndarray:
        """Write frames [F, H, W] in order, outside any env's stack history; returns their ids.

        For a replay that receives frames already numbered by a collector: the ids are contiguous
        (``written`` before the call, and on), so one offset maps a whole push.
        """
        return np.array([self._write(f) for f in frames], dtype=np.int64)

    def reset(self, env: int, frame: np.ndarray) -> np.ndarray:
        """The first frame of an episode; returns the ids [S] of the padded stack [f0, ..., f0]."""
        fid = self._write(frame)
        self.history[env].clear()
        self.history[env].extend([fid] * self.stack)
        return np.array(self.history[env], dtype=np.int64)

    def add_step(self, env: int, frame: np.ndarray) -> np.ndarray:
        """The newest frame after a step of ``env``; returns the ids [S] of the observation it completes."""
        if not self.history[env]:
            raise ValueError(f"env {env}: add_step before reset")
        self.history[env].append(self._write(frame))
        return np.array(self.history[env], dtype=np.int64)

    def add(self, obs_ids: np.ndarray, next_ids: np.ndarray) -> np.ndarray:
        """Store transitions by the ids of their stacks ([B, S] or [S]); returns their slots.

        A transition whose frames have already left the ring (possible only when the capacity is
        smaller than the n-step delay across all envs) is dropped and gets slot −1.
        """
        obs_ids = np.atleast_2d(np.asarray(obs_ids, dtype=np.int64))
        next_ids = np.atleast_2d(np.asarray(next_ids, dtype=np.int64))
        if obs_ids.shape != next_ids.shape or obs_ids.shape[1] != self.stack:
            raise ValueError(
                f"obs_ids {obs_ids.shape} and next_ids {next_ids.shape} must both be [B, {self.stack}]"
            )
        if (
            np.any(next_ids >= self.written)
            or np.any(np.diff(obs_ids, axis=1) < 0)
            or np.any(next_ids[:, 0] < obs_ids[:, 0])
        ):
            raise ValueError("ids must be ones returned by reset/add_step")
        slots = np.full(len(obs_ids), -1, dtype=np.int64)
        for i, (o, nx) in enumerate(zip(obs_ids, next_ids)):
            if o[0] < self.oldest_id:
                continue
            slot = int(o[-1] % self.capacity)
            self.obs_ids[slot], self.next_ids[slot] = o, nx
            self.has_transition[slot] = True
            deps = self.dependents[o[0] % self.capacity]
            if slot not in deps:
                free = np.flatnonzero(deps < 0)
                deps[free[0] if len(free) else 0] = slot  # a full list only holds stale entries
            slots[i] = slot
        return slots

    def valid(self, idx: np.ndarray) -> np.ndarray:
        """Which slots hold a transition whose frames are all still in the ring."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.has_transition[idx] & (self.obs_ids[idx, 0] >= self.oldest_id)

    def pop_invalidated(self) -> np.ndarray:
        """Slots whose transitions were overwritten or lost a frame since the last call."""
        out, self._invalidated = np.array(self._invalidated, dtype=np.int64), []
        return out

    def stacks(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [B, S, H, W] and next_obs [B, S, H, W] of the transitions in slots ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        if not np.all(self.valid(idx)):
            raise ValueError(f"slots {idx[~self.valid(idx)].tolist()} hold no valid transition")
        return self.frames[self.obs_ids[idx] % self.capacity], self.frames[self.next_ids[idx] % self.capacity]
