"""Folders a run will write, checked before the run starts: a path that cannot take a file is bad
input (exit 2, nothing opened), not a traceback after an hour of training."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from components.config import ConfigError


def check_writable(folder: str | Path, what: str) -> Path:
    """``folder`` (absolute) if a file can be created in it; folders made for the probe are removed.

    Raises:
        ConfigError: naming ``what`` (the config key or flag), the folder and the OS's reason.
    """
    path = Path(folder).expanduser().absolute()
    missing = []  # deepest first
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"{what}: {p} is not a folder, so nothing can be written under it")
    try:
        for d in reversed(missing):
            d.mkdir()
        fd, probe = tempfile.mkstemp(dir=path, prefix=".adl-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{what}: cannot write in {path} ({e.strerror or e})") from None
    finally:
        for d in missing:
            with contextlib.suppress(OSError):
                d.rmdir()
    return path


def check_run_folders(checkpoint_dir: str | Path | None) -> None:
    """The checkpoint folder (if any) and the temp folder where artifacts are staged before upload."""
    if checkpoint_dir is not None:
        check_writable(checkpoint_dir, "checkpoint.dir")
    check_writable(tempfile.gettempdir(), "the temp folder where artifacts are staged ($TMPDIR)")
