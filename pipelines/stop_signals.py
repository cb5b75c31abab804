"""Graceful stops: the first SIGINT/SIGTERM asks the loop to stop, a second one stops at once.

The loop polls :meth:`StopSignals.requested` between steps, so the step in progress finishes, a
checkpoint is written and the MLflow run is closed as KILLED. A second signal raises
``KeyboardInterrupt`` right where the driver is (the run is still closed, no checkpoint is written).
Install it after ``ray.init``: Ray replaces the driver's SIGTERM handler when it starts.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class StopSignals:
    """``on_request`` runs at the first signal (a sweep hands the request on to Tune there);
    ``what`` is the work the message says gets finished."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(
        self,
        on_request: Callable[[], None] | None = None,
        what: str = "finishing this step, writing a checkpoint",
    ) -> None:
        self.signum: int | None = None
        self.on_request, self.what = on_request, what
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130 for SIGINT)."""
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\nadl: got {signal.Signals(signum).name}: {self.what} (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
