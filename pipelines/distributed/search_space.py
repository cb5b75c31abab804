"""Search spaces written as plain YAML, translated to Ray Tune in one place.

lr: {loguniform: [1.0e-5, 1.0e-3]}   seed: {grid: [0, 1, 2]}   hidden: {choice: [64, 128]}
dropout: {uniform: [0.0, 0.3]}       layers: {randint: [1, 4]}   (upper bound exclusive)
tau: 0.005                           (a plain value is fixed)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config import ConfigError

KINDS = ("choice", "grid", "uniform", "loguniform", "randint")


def _check(key: str, spec: Any) -> tuple[str, Any] | None:
    if not isinstance(spec, Mapping):
        return None
    if len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigError(
            f"search_space.{key}: {dict(spec)!r} is not a search space; "
            f"use one of {', '.join(f'{{{k}: ...}}' for k in KINDS)} or a plain value"
        )
    kind, args = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"search_space.{key}.{kind}: expected a non-empty list, got {args!r}")
    else:
        if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, int | float) for a in args)):
            raise ConfigError(f"search_space.{key}.{kind}: expected [low, high], got {args!r}")
        if not args[0] < args[1]:
            raise ConfigError(f"search_space.{key}.{kind}: low {args[0]} must be below high {args[1]}")
        if kind == "loguniform" and args[0] <= 0:
            raise ConfigError(f"search_space.{key}.loguniform: bounds must be > 0, got {args!r}")
        if kind == "randint" and not all(isinstance(a, int) for a in args):
            raise ConfigError(f"search_space.{key}.randint: bounds must be integers, got {args!r}")
    return kind, args


def all_values(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every listed value per key (choices, grid points, both bounds), so each can be validated."""
    out = {}
    for key, spec in space.items():
        checked = _check(key, spec)
        out[key] = [spec] if checked is None else list(checked[1])
    return out


def trial_count(space: Mapping[str, Any], num_samples: int) -> int:
    """How many trials Tune makes: every grid point, ``num_samples`` times."""
    count = num_samples
    for key, spec in space.items():
        checked = _check(key, spec)
        if checked is not None and checked[0] == "grid":
            count *= len(checked[1])
    return count


def to_tune(space: Mapping[str, Any]) -> dict[str, Any]:
    """The Tune param_space for a YAML search space."""
    from ray import tune  # Ray: a search space is validated before Ray loads; only running it needs Tune

    out: dict[str, Any] = {}
    for key, spec in space.items():
        checked = _check(key, spec)
        if checked is None:
            out[key] = spec
            continue
        kind, args = checked
        if kind == "choice":
            out[key] = tune.choice(args)
        elif kind == "grid":
            out[key] = tune.grid_search(args)
        elif kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        else:
            out[key] = tune.randint(*args)
    return out


def pbt_mutations(space: Mapping[str, Any]) -> dict[str, Any]:
    """What PBT may change when it explores: a choice as a list (PBT steps to a neighbouring value, or
    resamples), a range as a Tune domain (PBT scales it by 0.8 or 1.2, or resamples); grid and fixed
    keys stay as the trial had them."""
    out: dict[str, Any] = {}
    tuned = to_tune(space)
    for key, spec in space.items():
        checked = _check(key, spec)
        if checked is None or checked[0] == "grid":
            continue
        out[key] = list(checked[1]) if checked[0] == "choice" else tuned[key]
    return out


def clamp_to_space(space: Mapping[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as PBT perturbed it, put back inside ``space`` (PBT's 1.2× of a value near a bound
    leaves the range, e.g. a step size of 1.08 from [0.01, 0.9]; every value of the space was validated
    before Ray started, nothing outside it was): a range clipped to its bounds (a randint's upper
    bound is exclusive), a number not among its choices to the nearest one."""
    for key, spec in space.items():
        checked = _check(key, spec)
        if checked is None or key not in config:
            continue
        kind, args = checked
        value = config[key]
        if kind in ("uniform", "loguniform"):
            config[key] = float(min(max(float(value), args[0]), args[1]))
        elif kind == "randint":
            config[key] = int(min(max(round(float(value)), args[0]), args[1] - 1))
        elif value not in args and isinstance(value, int | float):
            numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
            if numbers:
                config[key] = min(numbers, key=lambda a: abs(a - value))
    return config
