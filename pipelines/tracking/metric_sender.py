"""Metrics sent to the tracking server from a thread of their own, so that training never waits for it.

A run logs metrics every few seconds from its training loop. Sent inline, each call waits for the
server; when the server is away (restarted, a network cut), MLflow's client retries for minutes with
growing pauses and the loop waits all that time, then fails the run. :class:`MetricSender` takes each
batch into a queue and returns at once; its thread sends the batches in order, and a batch that fails
is retried (after 1, 2, 4 ... 30 s) until it goes through, so an outage costs no training and loses no
metric. The queue is bounded: past ``max_pending`` values the oldest batches are dropped and counted
(:attr:`lost`), so a server that never comes back cannot exhaust memory. :meth:`close` waits (up to a
deadline) until every batch has been sent.

With ``coalesce`` the thread sends what has queued up as one batch (up to that many values), at most
once every ``min_interval_s``: a call to the server costs ~7 ms of CPU (and holds the GIL) whatever
its size here, so a loop that logs a row every 0.1 s pays for ten rows a second with one call.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

Batch = Sequence[Any]


class MetricSender:
    """Sends batches with ``send`` from a daemon thread, in order, retrying each until it succeeds."""

    def __init__(
        self,
        send: Callable[[Batch], None],
        max_pending: int = 500_000,
        backoff_s: tuple[float, float] = (1.0, 30.0),
        on_error: Callable[[Exception], None] | None = None,
        on_slow: Callable[[float, int], None] | None = None,
        slow_s: float = 10.0,
        coalesce: int = 0,
        min_interval_s: float = 0.0,
    ) -> None:
        self._send, self._max, self._backoff = send, max_pending, backoff_s
        self._coalesce, self._min_interval_s = coalesce, min_interval_s
        self._hurry = False  # flush/close: send now, not after the interval
        self._on_error, self._on_slow, self._slow_s = on_error, on_slow, slow_s
        self._inflight_since: float | None = None  # when the batch being sent was taken
        self._queue: collections.deque[Batch] = collections.deque()
        self._pending = 0  # values queued or being sent
        self._cond = threading.Condition()
        self._closed = self._give_up = False
        self.lost = 0  # values dropped because the queue was full
        self.failures = 0  # failed attempts (each retried)
        self._thread = threading.Thread(target=self._run, name="adl-metric-sender", daemon=True)
        self._thread.start()

    def put(self, batch: Batch) -> None:
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the metric sender is closed")
            self._queue.append(batch)
            self._pending += len(batch)
            while self._pending > self._max and self._queue:  # the batch in flight is not in the queue
                dropped = self._queue.popleft()
                self._pending -= len(dropped)
                self.lost += len(dropped)
            self._cond.notify_all()
            since = self._inflight_since
        # A client that retries inside one call (MLflow's does, for minutes) raises nothing while the
        # server is away: say so from here, once a call has been waiting longer than slow_s.
        if since is not None and self._on_slow is not None and time.monotonic() - since > self._slow_s:
            self._on_slow(time.monotonic() - since, self.pending)

    def _take(self) -> Batch:
        """The next batch, with the ones queued behind it when coalescing (caller holds the lock)."""
        batch = self._queue.popleft()
        if not self._coalesce:
            return batch
        merged = list(batch)
        while self._queue and len(merged) + len(self._queue[0]) <= self._coalesce:
            merged.extend(self._queue.popleft())
        return merged

    def _run(self) -> None:
        last_send = -float("inf")
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                # Let rows pile up for one call, unless someone waits for them.
                while not (self._hurry or self._closed):
                    left = self._min_interval_s - (time.monotonic() - last_send)
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    return
                batch = self._take()  # in flight: still counted in pending until sent
                self._inflight_since = time.monotonic()
            last_send = time.monotonic()
            pause = self._backoff[0]
            while True:
                try:
                    self._send(batch)
                    break
                except Exception as e:  # noqa: BLE001 - whatever the client raises: retry
                    self.failures += 1
                    if self._on_error is not None:
                        self._on_error(e)
                    with self._cond:
                        if self._give_up:
                            return
                        self._cond.wait(pause)
                        if self._give_up:
                            return
                    pause = min(pause * 2, self._backoff[1])
            with self._cond:
                self._inflight_since = None
                if not self._give_up:  # (a batch given up on was counted lost already)
                    self._pending -= len(batch)
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued has been sent; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._pending > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, 0.5))
            finally:
                self._hurry = False
        return True

    def close(self, timeout_s: float) -> bool:
        """Send what is queued (up to ``timeout_s``), then stop; False if some was left unsent (it is
        counted in :attr:`lost`)."""
        sent = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            if not sent:
                self._give_up = True
                self.lost += self._pending
                self._queue.clear()
                self._pending = 0
            self._cond.notify_all()
        self._thread.join(timeout=5)
        return sent
