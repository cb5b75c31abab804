"""The device section every trainer's config shares, and the device names it takes, checked without
importing torch (a collector stepping vector envs never loads torch, and its config module must not
make it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from components.config import ConfigError, param

DEVICE_NAMES = "auto, cpu, cuda, cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, key: str) -> None:
    """Refuse a device name that is not one of :data:`DEVICE_NAMES` (a config check; sees no GPU)."""
    if not _DEVICE.fullmatch(name):
        raise ConfigError(f"{key}: {name!r} is not a device; allowed: {DEVICE_NAMES}")


@dataclass(frozen=True)
class DeviceFields:
    """Where a trainer runs and how it computes: the four keys every trainer's section has.

    The GAN and sequence families' ``train`` and DQN's ``learner`` inherit them, so the names, docs
    and checks exist once; ``components/device.resolve_placement`` turns a section into the
    ``Placement`` its trainer takes. ``section_key`` is where the fields live in the YAML, for messages.
    """

    section_key: ClassVar[str] = "train"

    device: str = param(
        "auto",
        f"{DEVICE_NAMES}; auto = the GPU this process can see (in a Ray actor or trial: the one Ray "
        f"gave it), else the CPU",
    )
    precision: Literal["fp32", "bf16"] = param(
        "fp32",
        "bf16: forward passes under bf16 autocast, losses in fp32 (docs/<family>.md says what else "
        "stays fp32; the DQN learner: CUDA only)",
    )
    tf32: bool = param(True, "on CUDA: let fp32 matmuls and convolutions use TF32 (process-wide)")
    threads: int = param(1, "torch intra-op CPU threads (process-wide); 0 leaves torch's default", ge=0)

    def __post_init__(self) -> None:
        check_device_name(self.device, f"{self.section_key}.device")
