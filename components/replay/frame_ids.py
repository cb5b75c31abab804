"""Collector-local frame ids → the replay's frame ids, one segment per push.

A collector in frame mode numbers its frames 0, 1, 2, ... and each push carries a contiguous run
of them; the replay writes that run contiguously into its frame ring, so one segment (local start,
replay start, count) maps the whole push. Transitions may name frames of earlier pushes (the
stack's history, the n-step delay), so a segment is kept for as long as any of its frames is still
in the ring. Collectors push interleaved, hence one list of segments per collector, keyed by
(collector index, generation): a replacement collector numbers from 0 again under a key of its own.
A run that arrives below the end of the last one from the same key (a fresh collector after a
resume from a snapshot that kept the old map) starts that key afresh. A local id in no segment
(a push that was lost with a crashed replay, or frames that have left the ring) maps to −1.
"""

from __future__ import annotations

import numpy as np

Key = tuple[int, int]  # (collector index, generation)


class FrameIdMap:
    def __init__(self) -> None:
        self.segments: dict[Key, list[tuple[int, int, int]]] = {}  # per key: (local, replay, count)

    def register(self, key: Key, local_start: int, replay_start: int, count: int) -> None:
        """Frames ``local_start, ...`` of collector ``key`` now live at ``replay_start, ...``."""
        segs = self.segments.setdefault(key, [])
        if segs and local_start < segs[-1][0] + segs[-1][2]:
            segs.clear()  # ids went back: a new collector under an old key
        if count > 0:
            segs.append((local_start, replay_start, count))

    def lookup(self, key: Key, local: np.ndarray) -> np.ndarray:
        """Replay ids of the local ids ``local`` (any shape) of collector ``key``; −1 where unknown."""
        local = np.asarray(local, dtype=np.int64)
        segs = np.array(self.segments.get(key, []), dtype=np.int64).reshape(-1, 3)
        if len(segs) == 0:
            return np.full(local.shape, -1, dtype=np.int64)
        k = np.searchsorted(segs[:, 0], local, side="right") - 1
        seg = segs[np.maximum(k, 0)]  # [..., 3]
        offset = local - seg[..., 0]
        known = (k >= 0) & (offset < seg[..., 2])
        return np.where(known, seg[..., 1] + offset, -1)

    def prune(self, oldest: int) -> None:
        """Forget segments whose frames all have ids below ``oldest`` (they have left the ring)."""
        for key in list(self.segments):
            segs = self.segments[key]
            dead = 0
            while dead < len(segs) and segs[dead][1] + segs[dead][2] <= oldest:
                dead += 1
            del segs[:dead]
            if not segs:
                del self.segments[key]

    def state(self) -> list[list[int]]:
        """Flat rows [collector, generation, local, replay, count], for snapshot metadata."""
        return [[*key, *seg] for key, segs in self.segments.items() for seg in segs]

    def load(self, rows: list[list[int]]) -> None:
        self.segments = {}
        for c, g, local, replay, count in rows:
            self.segments.setdefault((int(c), int(g)), []).append((int(local), int(replay), int(count)))
