"""The device names every config takes, checked without importing torch (a collector stepping vector
envs never loads torch, and its config module must not make it)."""

from __future__ import annotations

import re

from components.config import ConfigError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, key: str) -> None:
    """Refuse a device name that is not one of :data:`DEVICE_NAMES` (a config check; sees no GPU)."""
    if not _DEVICE.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a device; allowed: {DEVICE_NAMES}")
