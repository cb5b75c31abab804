from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal

import pytest

from components.config import ConfigError, apply_overrides, build, describe, dump_yaml, load, param, section


@dataclass(frozen=True)
class Inner:
    """An inner section."""

    lr: float = param(1e-3, "learning rate", gt=0.0)
    layers: list[int] = param(factory=lambda: [64, 64], doc="hidden sizes")


@dataclass(frozen=True)
class Outer:
    """A top-level config."""

    seed: int = param(0, "seed")
    kind: Literal["a", "b"] = param("a", "which kind")
    gamma: float = param(0.99, "discount", ge=0.0, lt=1.0)
    name: str | None = param(None, "optional name")
    inner: Inner = section(Inner)


def test_defaults_and_nested_values():
    cfg = build(Outer, {"seed": 3, "inner": {"lr": 0.5, "layers": [8]}})
    assert cfg.seed == 3 and cfg.inner.lr == 0.5 and cfg.inner.layers == [8] and cfg.kind == "a"


def _config_classes(root: type) -> set[type]:
    """``root`` and every config section under it, however deep."""
    found = {root}
    for hint in typing.get_type_hints(root).values():
        if dataclasses.is_dataclass(hint) and hint not in found:
            found |= _config_classes(hint)  # type: ignore[arg-type]
    return found


def test_every_config_class_is_frozen_and_a_built_config_refuses_assignment():
    """Issue #24: a config is fixed once built (no component rewrites it); a change is a new config."""
    from components.gan.config import GanConfig
    from components.rl.dqn.config import DQNConfig
    from components.rl.qlearning import QLearnConfig
    from components.seq.config import SeqConfig

    classes = set().union(*(_config_classes(c) for c in (DQNConfig, GanConfig, SeqConfig, QLearnConfig)))
    assert len(classes) >= 20 and not [c.__qualname__ for c in classes if not c.__dataclass_params__.frozen]
    dqn = load(DQNConfig, None, ["checkpoint.dir=ck", "collectors.num_collectors=2"])  # build + validate
    with pytest.raises(dataclasses.FrozenInstanceError):
        dqn.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dqn.checkpoint.dir = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dqn.collectors.schedule.steps = 5  # type: ignore[misc]
    assert dqn.checkpoint.dir == "ck" and dqn.seed == 0
    moved = dataclasses.replace(dqn, checkpoint=dataclasses.replace(dqn.checkpoint, dir="/elsewhere"))
    assert moved.checkpoint.dir == "/elsewhere" and dqn.checkpoint.dir == "ck"  # the original is untouched
    outer = build(Outer, {"inner": {"lr": 0.5}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        outer.inner.lr = 0.1  # type: ignore[misc]


def test_int_is_accepted_for_float_and_yaml_float_for_int():
    cfg = build(Outer, {"gamma": 0, "seed": 1e3})
    assert cfg.gamma == 0.0 and isinstance(cfg.gamma, float)
    assert cfg.seed == 1000 and isinstance(cfg.seed, int)


def test_unknown_key_names_the_path_and_the_closest_key():
    with pytest.raises(ConfigError) as e:
        build(Outer, {"inner": {"lrr": 0.1}})
    msg = str(e.value)
    assert "inner.lrr" in msg and "'lr'" in msg and "layers" in msg


def test_wrong_type_names_key_value_and_expected_type():
    with pytest.raises(ConfigError, match=r"inner\.lr: expected a number, got 'fast'"):
        build(Outer, {"inner": {"lr": "fast"}})
    with pytest.raises(ConfigError, match=r"seed: expected an integer, got 1\.5"):
        build(Outer, {"seed": 1.5})
    with pytest.raises(ConfigError, match=r"inner\.layers\[1\]: expected an integer"):
        build(Outer, {"inner": {"layers": [1, "x"]}})


def test_out_of_range_and_literal():
    with pytest.raises(ConfigError, match=r"gamma: 1\.0 is out of range; allowed: >= 0\.0 and < 1\.0"):
        build(Outer, {"gamma": 1.0})
    with pytest.raises(ConfigError, match=r"kind: 'c' is not allowed; allowed: 'a', 'b'"):
        build(Outer, {"kind": "c"})
    with pytest.raises(ConfigError, match="inner.lr"):
        build(Outer, {"inner": {"lr": 0.0}})


def test_overrides_parse_yaml_values_and_are_validated():
    data = apply_overrides(
        {"inner": {"lr": 0.1}}, ["inner.lr=0.2", "seed=7", "name=run", "inner.layers=[1, 2]"]
    )
    cfg = build(Outer, data)
    assert (cfg.inner.lr, cfg.seed, cfg.name, cfg.inner.layers) == (0.2, 7, "run", [1, 2])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["inner.lr"])
    with pytest.raises(ConfigError, match="unknown key 'inner.lrate'"):
        build(Outer, apply_overrides({}, ["inner.lrate=1"]))
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_yaml_round_trip(tmp_path):
    cfg = build(Outer, {"seed": 5, "inner": {"layers": [3, 4]}})
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    assert load(Outer, path) == cfg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(Outer, bad)


def test_describe_lists_every_leaf_with_its_doc():
    rows = {key: doc for key, _, _, doc in describe(Outer)}
    assert rows["inner.lr"] == "learning rate" and rows["gamma"] == "discount" and "inner" not in rows


def test_exponent_without_a_dot_is_a_number():
    """YAML 1.1 reads 1e-3 as a string; a float field takes it as the number it means."""
    cfg = build(Outer, apply_overrides({}, ["inner.lr=1e-3"]))
    assert cfg.inner.lr == 0.001
    with pytest.raises(ConfigError, match="expected a number"):
        build(Outer, {"inner": {"lr": "1e-3x"}})


def test_a_partial_section_keeps_the_fields_own_defaults():
    """`--set collectors.schedule.steps=...` must not reset the rest of a factory-made default."""
    from components.rl.dqn.config import DQNConfig
    from components.rl.qlearning import QLearnConfig

    dqn = load(DQNConfig, overrides=["collectors.schedule.steps=2000", "env.max_episode_steps=200"])
    default = load(DQNConfig)
    assert dqn.collectors.schedule.steps == 2000
    assert dqn.collectors.schedule.end == default.collectors.schedule.end == 0.02  # the class says 0.05
    assert dqn.env.id == default.env.id == "CartPole-v1" and dqn.env.max_episode_steps == 200
    # Q-learning's α defaults to a constant 0.5; the schedule class to a linear 1.0 → 0.05.
    alpha = load(QLearnConfig, overrides=["alpha.start=0.3"]).alpha
    assert (alpha.start, alpha.end, alpha.steps, alpha.kind) == (0.3, 0.5, 0, "constant")
    with pytest.raises(ConfigError, match="collectors.schedule.stpes"):
        load(DQNConfig, overrides=["collectors.schedule.stpes=5"])


def test_help_shows_a_sections_defaults_as_its_field_gives_them():
    from components.rl.dqn.config import DQNConfig

    rows = {key: default for key, _, default, _ in describe(DQNConfig)}
    assert rows["env.id"] == "CartPole-v1"  # EnvConfig's own default is FrozenLake-v1
    assert rows["collectors.schedule.end"] == 0.02  # ScheduleConfig's own default is 0.05


def test_a_decaying_schedule_over_zero_steps_and_non_string_keys_are_refused_by_name():
    from components.rl.dqn.config import DQNConfig
    from components.rl.qlearning import QLearnConfig

    # α defaults to a constant over 0 steps: making it linear without steps would sit at its end.
    with pytest.raises(ConfigError, match=r"alpha.steps: 0 makes the linear schedule"):
        load(QLearnConfig, overrides=["alpha.kind=linear", "alpha.end=0.1"])
    assert load(QLearnConfig, overrides=["alpha.kind=linear", "alpha.end=0.1", "alpha.steps=500"])
    with pytest.raises(ConfigError, match="unknown key 'collectors.1'"):
        load(DQNConfig, overrides=["collectors={1: 2}"])


@dataclass
class Budget:
    """Floats that must be finite, and one that may be +inf."""

    lr: float = param(1e-3, "learning rate", gt=0.0)
    betas: list[float] = param(factory=lambda: [0.9, 0.99], doc="Adam betas")
    target: float | None = param(None, "optional target")
    max_time_s: float = param(60.0, "time budget", gt=0.0, allow_inf=True)


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"lr": float("inf")}, "lr: inf is not allowed; allowed: a finite number"),
        ({"lr": "1e999"}, "lr: inf is not allowed"),  # a YAML 1.1 exponent that overflows
        ({"betas": [0.9, float("nan")]}, "betas[1]: nan is not allowed"),
        ({"target": float("-inf")}, "target: -inf is not allowed"),
        ({"max_time_s": float("nan")}, "max_time_s: nan is not allowed; allowed: a finite number or .inf"),
        ({"max_time_s": float("-inf")}, "max_time_s: -inf is not allowed"),
    ],
)
def test_non_finite_floats_are_refused_by_name(data, needle):
    with pytest.raises(ConfigError) as e:
        build(Budget, data)
    assert needle in str(e.value)


def test_inf_is_a_value_only_where_the_field_allows_it():
    assert build(Budget, apply_overrides({}, ["max_time_s=.inf"])).max_time_s == float("inf")
    with pytest.raises(ConfigError, match="lr: inf is not allowed"):
        build(Budget, apply_overrides({}, ["lr=.inf"]))
