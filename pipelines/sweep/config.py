"""The typed config of ``adl sweep``: which family, its base config, the search space, the scheduler,
the search algorithm and the resources of each trial. Values live in ``configs/sweeps/*.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from components.config import ConfigError, param, section
from pipelines.families import FAMILIES

# A sweep's name is a folder under its storage root: one path component, nothing to climb out with.
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_sweep_name(name: str, where: str = "name") -> str:
    if not SWEEP_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: {name!r} is not a sweep name; allowed: letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit, at most 100 characters (it names a folder)"
        )
    return name


@dataclass(frozen=True)
class SchedulerConfig:
    """Which Tune scheduler stops or exploits trials."""

    kind: Literal["asha", "pbt", "fifo"] = param("asha", "ASHA early stopping, PBT exploit/explore, or none")
    grace_period: int = param(1, "ASHA: reports a trial gets before it may be stopped", ge=1)
    reduction_factor: float = param(2.0, "ASHA: keep 1/reduction_factor of trials at each rung", gt=1.0)
    perturbation_interval: int = param(2, "PBT: reports between exploit/explore steps", ge=1)
    synch: bool = param(
        False,
        "PBT: every trial waits at each perturbation point and the worst quarter always exploits the best "
        "(reproducible; the slowest trial sets the pace). Off: a trial exploits when it reports, against "
        "the scores the others last reported",
    )


@dataclass(frozen=True)
class ResourcesConfig:
    """Resources one trial asks Ray for."""

    cpu: float = param(1.0, "CPUs per trial", ge=0.0)
    gpu: float = param(0.0, "GPUs per trial; fractions share a GPU between trials", ge=0.0)
    custom: dict[str, float] = param(
        factory=dict, doc="custom Ray resources per trial, e.g. {worker_node: 1}"
    )


@dataclass(frozen=True)
class SweepConfig:
    """A Tune sweep over one family's config."""

    family: str = param(doc="which family's trainer every trial runs")
    base_config: str = param(doc="the family YAML every trial starts from (path)")
    overrides: dict[str, Any] = param(factory=dict, doc="fixed dotted-key values applied to the base config")
    search_space: dict[str, Any] = param(
        factory=dict, doc="dotted key → {choice|grid|uniform|loguniform|randint}"
    )
    name: str | None = param(None, "sweep name (default: the sweep file's name); folder under storage_path")
    num_samples: int = param(1, "samples of the space (each grid point is repeated this often)", ge=1)
    metric: str | None = param(None, "metric to optimise (default: the family's)")
    mode: Literal["min", "max"] | None = param(None, "min or max (default: the family's)")
    metric_tiebreak: str | None = param(
        None, "second metric that decides between trials tied on metric (e.g. max_abs_q_error)"
    )
    mode_tiebreak: Literal["min", "max"] = param("min", "min or max for metric_tiebreak")
    scheduler: SchedulerConfig = section(SchedulerConfig)
    search: Literal["random", "optuna"] = param("random", "search algorithm: random/grid or Optuna TPE")
    max_concurrent: int = param(2, "trials running at once", ge=1)
    resources: ResourcesConfig = section(ResourcesConfig)
    max_failures: int = param(1, "retries of a failed trial from its last checkpoint", ge=0)
    storage_path: str | None = param(
        None, "where Tune keeps trial state: a folder or any URI Tune accepts (default: ./.adl/sweeps)"
    )
    artifacts_every: int = param(
        1, "pictures and checkpoints at most every this many reports (and within overhead)", ge=1
    )
    overhead: float = param(
        0.1,
        "share of a trial's training time its pictures and checkpoints may take; the last report always "
        "has both (PBT checkpoints every report, pictures within this share: it exploits checkpoints)",
        gt=0.0,
    )
    seed: int = param(0, "seed of the search algorithm", ge=0)

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family: unknown family {self.family!r}; known: {', '.join(FAMILIES)}")
        if self.name is not None:
            check_sweep_name(self.name)
