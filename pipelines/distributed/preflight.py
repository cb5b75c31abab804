"""Checks of a job's working directory before it is uploaded, with the rules Ray itself applies
(its excludes, ``.gitignore``/``.rayignore`` files, its package size limit).

These read Ray's private packaging module, so they live here, under ``distributed/``, where a Ray
upgrade that moves them is found in one place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from components.config import ConfigError


def working_dir_size(path: Path, excludes: Sequence[str]) -> int:
    """Bytes Ray would upload for ``path`` with ``excludes`` (plus .gitignore/.rayignore, as Ray does).

    Ray zips the working directory without compression, so the sum of file sizes is the package size
    to within the zip headers.
    """
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes  # Ray: `adl submit` only

    total = 0

    def add(p: Path) -> None:
        nonlocal total
        if p.is_file():
            total += p.stat().st_size

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    quiet = logging.getLogger("adl.submit")  # Ray's own logger announces every ignore file at INFO
    _dir_travel(
        path, [_get_excludes(path, list(excludes))], add, include_gitignore=include_gitignore, logger=quiet
    )
    return total


def package_limit() -> int:
    """Ray's limit on one uploaded package (GCS gRPC message size, ``RAY_max_grpc_message_size``)."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE  # Ray: `adl submit` only

    return int(GCS_STORAGE_MAX_SIZE)


def check_working_dir(path: Path, excludes: Sequence[str]) -> int:
    if not path.is_dir():
        raise ConfigError(f"--working-dir {path}: not a directory")
    size, limit = working_dir_size(path, excludes), package_limit()
    if size >= limit:
        raise ConfigError(
            f"working directory {path} is {size / 2**20:.1f} MiB after excludes, over Ray's "
            f"{limit / 2**20:.0f} MiB package limit; add --exclude PATTERN (or a .rayignore) for data "
            "and outputs, and read large data from shared storage instead"
        )
    return size
