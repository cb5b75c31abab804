"""One writer per run: a lease on a run's checkpoint folder, taken before the run is written to.

Two processes training the same run (a ``--resume`` while it still trains, two resumes at once) would
write into one MLflow run and one checkpoint folder, each overwriting the other's checkpoints. So the
process that trains a run holds ``<checkpoint.dir>/<run_id>/lease.json`` (its pid, host and start),
created exclusively, and touches it every few seconds; another refuses (exit 2) while it is held,
saying by whom. A lease whose holder is gone is taken over: on this host, a pid that no longer runs;
from another host (a shared folder), a file not touched for ``stale_s``.

The lease covers processes that share the checkpoint folder (one machine, or a shared file system).
A resume on another machine downloads the checkpoint into its own folder and cannot see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from components.config import ConfigError

LEASE = "lease.json"


class LeaseHeld(ConfigError):
    """Another process trains this run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class RunLease:
    """The lease of the run whose checkpoints live in ``folder``; a context manager."""

    def __init__(self, folder: Path, run_id: str, heartbeat_s: float = 5.0, stale_s: float = 60.0) -> None:
        self.folder, self.run_id = Path(folder), run_id
        self.path = self.folder / LEASE
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.me = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "since": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease now (None if nobody, or a holder that is gone)."""
        try:
            info = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            info, age = {}, time.time() - self._mtime()
        pid, host = info.get("pid"), info.get("host")
        if host == self.me["host"] and isinstance(pid, int):
            return info if _alive(pid) else None
        return info if age < self.stale_s else None

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def acquire(self) -> RunLease:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                held = self.holder()
                if held is not None:
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("since", 0))))
                    raise LeaseHeld(
                        f"run {self.run_id} is being trained by pid {held.get('pid')} on "
                        f"{held.get('host')} (since {since}; its lease: {self.path}); two processes would "
                        f"write into one run and one checkpoint folder. Stop that one first (Ctrl-C leaves "
                        f"a checkpoint), then resume"
                    ) from None
                with contextlib.suppress(FileNotFoundError):  # its holder is gone: take it over
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.me, f)
            self._thread = threading.Thread(target=self._beat, name="adl-lease", daemon=True)
            self._thread.start()
            return self
        raise LeaseHeld(f"run {self.run_id}: its lease {self.path} was taken by another process just now")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        try:
            if json.loads(self.path.read_text()).get("pid") == self.me["pid"]:
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
