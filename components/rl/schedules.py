"""Schedules for exploration and step sizes, as pure functions of a step counter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from components.config import ConfigError, param


@dataclass(frozen=True)
class ScheduleConfig:
    """A value that moves from ``start`` to ``end`` over ``steps`` steps, then stays at ``end``."""

    start: float = param(1.0, "value at step 0", ge=0.0)
    end: float = param(0.05, "value from `steps` on", ge=0.0)
    steps: int = param(10_000, "steps (episodes or env steps, per the owner) to go from start to end", ge=0)
    kind: Literal["linear", "exponential", "constant"] = param("linear", "shape of the decay")


def check_schedule(cfg: ScheduleConfig, name: str) -> None:
    """A decaying schedule over 0 steps would sit at ``end`` from step 0: refuse it by name."""
    if cfg.kind != "constant" and cfg.steps == 0 and cfg.start != cfg.end:
        raise ConfigError(
            f"{name}.steps: 0 makes the {cfg.kind} schedule start at its end value {cfg.end}; "
            f"allowed: {name}.steps >= 1, or {name}.kind: constant"
        )


def schedule_value(cfg: ScheduleConfig, t: int | float) -> float:
    """The scheduled value at step ``t``.

    linear: straight line start→end; exponential: start·(end/start)^(t/steps), a constant ratio per
    step (needs start, end > 0); constant: always ``start``.
    """
    if cfg.kind == "constant" or cfg.steps == 0:
        return cfg.start if cfg.kind == "constant" else cfg.end
    frac = min(max(t / cfg.steps, 0.0), 1.0)
    if cfg.kind == "linear":
        return cfg.start + frac * (cfg.end - cfg.start)
    if cfg.start <= 0 or cfg.end <= 0:
        raise ValueError("an exponential schedule needs start > 0 and end > 0")
    return cfg.start * math.exp(frac * math.log(cfg.end / cfg.start))
