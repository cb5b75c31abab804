"""Where a trainer runs: a config's device section resolved, once, into a :class:`Placement` (the
``torch.device``, its precision and the process settings that go with it: intra-op threads, TF32).

Every trainer's config has the same section (``components/device_names.DeviceFields``: ``device``,
``precision``, ``tf32``, ``threads``), and every trainer takes a :class:`Placement` made from it by
:func:`resolve_placement`. Every family takes the same names — ``auto`` (the GPU this process can
see, else the CPU), ``cpu``, ``cuda`` and ``cuda:N`` — and refuses a GPU torch cannot see with the
same :class:`ConfigError`, raised when the trainer is built, so a command fails with exit code 2
before any run is opened.

Threads: ``torch.set_num_threads`` is process-wide. A trainer sets what its config asks for (adl's
default is one thread: on a busy 2-core machine an LSTM ran 13× slower on two threads than on one);
0 leaves torch's default (every core).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from components.config import ConfigError
from components.device_names import DEVICE_NAMES as DEVICE_NAMES
from components.device_names import DeviceFields
from components.device_names import check_device_name as check_device_name

PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``auto`` → the current CUDA device if torch sees one, else the CPU; ``cuda``/``cuda:N`` must exist.

    CUDA devices come back with their index (``cuda:0``, never bare ``cuda``), so tensors and the
    trainer's device compare equal.
    """
    check_device_name(name, key)
    if name == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if count else torch.device("cpu")
    if count == 0:
        raise ConfigError(f"{key}: {name} was asked for but torch sees no GPU; use auto or cpu")
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    index = int(name.split(":")[1])
    if index >= count:
        seen = ", ".join(f"cuda:{i}" for i in range(count))
        raise ConfigError(
            f"{key}: {name} was asked for but torch sees {count} GPU{'s' * (count > 1)} ({seen}); "
            f"allowed here: auto, cpu, cuda, {seen}"
        )
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device, key: str = "train.precision") -> None:
    """bf16 needs a GPU that computes in bf16 (Ampere or newer); every CPU autocasts to bf16."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{key}: {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"{key}: bf16 was asked for but {torch.cuda.get_device_name(device)} has no bf16 support; "
            f"use fp32"
        )


def setup_process(device: torch.device, threads: int, tf32: bool = True) -> None:
    """Intra-op threads (0 = leave torch's default) and, on CUDA, TF32 matmuls/convolutions and cuDNN's
    autotuner (a trainer's batch shapes are fixed, so the first step's search pays for itself).

    All three are process-wide settings: the trainer built last decides them.
    """
    set_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True


def set_threads(threads: int) -> None:
    """torch's intra-op threads for this process; 0 leaves torch's default (every core)."""
    if threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Placement:
    """Where one trainer runs and how it computes, resolved from its device section once.

    A trainer takes one and never reads its section's device fields again: the names were checked,
    the GPU found (or refused), bf16 checked against it and the process set up when it was made
    (:func:`resolve_placement`).
    """

    device: torch.device  # with its index on CUDA (cuda:0, never bare cuda)
    precision: str  # fp32 | bf16
    tf32: bool
    threads: int  # 0: torch's default

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def autocast(self, cache: bool = True) -> AbstractContextManager[Any]:
        """bf16 autocast on this device when the precision is bf16, else a context that changes nothing."""
        return autocast(self.device, self.precision, cache)

    def describe(self) -> dict[str, str]:
        """What a run records about where it ran: the device, on CUDA the GPU's name, the precision."""
        return {**describe_device(self.device), "precision": self.precision}


def resolve_placement(fields: DeviceFields) -> Placement:
    """The section's device found (:func:`resolve_device`), its precision checked there
    (:func:`check_precision`) and the process set up (:func:`setup_process`): each once, with
    messages naming the section's keys (``train.device``, ``learner.precision``, ...)."""
    key = fields.section_key
    device = resolve_device(fields.device, f"{key}.device")
    check_precision(fields.precision, device, f"{key}.precision")
    setup_process(device, fields.threads, fields.tf32)
    return Placement(device, fields.precision, fields.tf32, fields.threads)


def autocast(device: torch.device, precision: str, cache: bool = True) -> AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when ``precision`` is bf16, else a context that changes nothing.

    ``cache=False`` turns off autocast's cache of cast weights, as code captured in a CUDA graph needs."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def prefers_channels_last(device: torch.device) -> bool:
    """Whether conv nets and image batches go channels-last there: on CUDA, where cuDNN's NHWC kernels
    (and TF32/bf16 tensor cores) are fastest; not on the CPU, where it was never measured here."""
    return device.type == "cuda"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fused_optimizer(device: torch.device) -> bool | None:
    """``fused=`` for Adam/AdamW on ``device``: one kernel for the whole update on CUDA; torch's default
    (foreach or per-tensor) on the CPU, where adl's numbers were measured."""
    return True if device.type == "cuda" else None


OPTIMIZERS = ("adam", "adamw", "rmsprop")
# The flags that say how an optimizer computes, not what: a checkpoint's param groups carry the writer's.
_HOW = ("fused", "capturable", "foreach", "differentiable")


def make_optimizer(kind: str, params: Any, device: torch.device, **hyper: Any) -> torch.optim.Optimizer:
    """Adam, AdamW or RMSprop for parameters on ``device``, every state tensor on that device.

    On CUDA Adam and AdamW are fused (one kernel for the whole update). RMSprop has no fused kernel and,
    left to torch's default, keeps its step counter on the CPU beside CUDA moments; capturable keeps it
    on the GPU, as fused Adam does. On the CPU: torch's defaults, where adl's numbers were measured.
    """
    cuda = device.type == "cuda"
    if kind == "adam":
        return torch.optim.Adam(params, fused=fused_optimizer(device), **hyper)
    if kind == "adamw":
        return torch.optim.AdamW(params, fused=fused_optimizer(device), **hyper)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, capturable=cuda, **hyper)
    raise ValueError(f"optimizer {kind!r}: allowed: {', '.join(OPTIMIZERS)}")


def restore_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Call after ``optimizer.load_state_dict`` with a checkpoint written on any device.

    - The checkpoint's param groups carry the *writer's* flags (a GPU run's fused or capturable, a CPU
      run's None/False) and replace this optimizer's: its own, from its constructor, go back.
    - Each step counter goes where those flags want it: on the parameter's device for a fused or
      capturable update, on the CPU otherwise.
    - Each state tensor shaped like its parameter takes the parameter's memory layout. A CUDA trainer
      keeps conv weights (and so their moments) channels-last and a CPU trainer does not;
      ``load_state_dict`` keeps the writer's strides, and fused Adam with moments laid out unlike their
      parameter updates the wrong elements (on the CPU) or refuses them (on CUDA).
    """
    for group in optimizer.param_groups:
        for key in _HOW:
            if key in optimizer.defaults:
                group[key] = optimizer.defaults[key]
        on_param = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if not torch.is_tensor(value):
                    continue
                if key == "step":
                    state[key] = value.to(p.device if on_param else "cpu", torch.float32)
                elif value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def to_cpu(state: Any) -> Any:
    """A copy of a (nested) state dict with every tensor on the CPU, as checkpoints are stored."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: to_cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_cpu(v) for v in state)
    return state


def describe_device(device: torch.device) -> dict[str, str]:
    """What a run should record about where it ran: the device and, on CUDA, the GPU's name."""
    out = {"device": str(device)}
    if device.type == "cuda":
        out["gpu_name"] = torch.cuda.get_device_name(device)
    return out
