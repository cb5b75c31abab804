"""components/device_names.py: the one device section (``device``, ``precision``, ``tf32``,
``threads``) that the GAN and sequence families' ``train`` and DQN's ``learner`` share, and its checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from components.config import ConfigError, describe, load
from components.device_names import DeviceFields
from components.gan.config import GanConfig
from components.gan.config import TrainConfig as GanTrain
from components.rl.dqn.config import DQNConfig, LearnerConfig
from components.seq.config import SeqConfig
from components.seq.config import TrainConfig as SeqTrain

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = REPO / "configs/dqn/cartpole.yaml"
SECTIONS = [
    (GanConfig, GanTrain, "train"),
    (SeqConfig, SeqTrain, "train"),
    (DQNConfig, LearnerConfig, "learner"),
]
FIELDS = ("device", "precision", "tf32", "threads")


def _described(config_cls: type, key: str) -> dict[str, tuple[str, object, str]]:
    """What ``adl config FAMILY`` prints for the section's device keys: type, default, doc."""
    return {k: (tp, default, doc) for k, tp, default, doc in describe(config_cls) if k.startswith(f"{key}.")}


@pytest.mark.parametrize("config_cls,section,key", SECTIONS, ids=["gan", "seq", "dqn"])
def test_every_trainer_section_is_the_one_device_section(config_cls, section, key) -> None:
    assert issubclass(section, DeviceFields) and section.section_key == key
    base = {f.name: f for f in dataclasses.fields(DeviceFields)}
    mine = {f.name: f for f in dataclasses.fields(section)}
    assert [n for n in mine if n in FIELDS] == list(FIELDS) == list(base)
    for name in FIELDS:  # not copies that agree today: the very field objects of the base
        assert mine[name] is base[name]
    shown = _described(config_cls, key)
    assert {k.split(".", 1)[1]: v for k, v in shown.items() if k.split(".", 1)[1] in FIELDS} == {
        name: _described(GanConfig, "train")[f"train.{name}"] for name in FIELDS
    }
    assert "num_threads" not in mine


@pytest.mark.parametrize("config_cls,section,key", SECTIONS, ids=["gan", "seq", "dqn"])
def test_each_section_checks_its_device_keys_naming_them(config_cls, section, key) -> None:
    path = CARTPOLE if config_cls is DQNConfig else None
    cfg = load(config_cls, path, [f"{key}.device=cpu", f"{key}.threads=0", f"{key}.tf32=false"])
    got = getattr(cfg, key)
    assert (got.device, got.precision, got.tf32, got.threads) == ("cpu", "fp32", False, 0)
    with pytest.raises(ConfigError) as e:
        load(config_cls, path, [f"{key}.device=gpu"])
    assert str(e.value) == f"{key}.device: 'gpu' is not a device; allowed: auto, cpu, cuda, cuda:N"
    with pytest.raises(ConfigError) as e:
        load(config_cls, path, [f"{key}.precision=fp16"])
    assert str(e.value).startswith(f"{key}.precision: 'fp16' is not allowed; allowed: 'fp32', 'bf16'")
    with pytest.raises(ConfigError) as e:
        load(config_cls, path, [f"{key}.threads=-1"])
    assert str(e.value) == f"{key}.threads: -1 is out of range; allowed: >= 0"
    with pytest.raises(ConfigError, match=f"{key}.device: 'cuda1' is not a device"):
        section(device="cuda1")  # built in Python too, not only from YAML


def test_the_learners_threads_default_to_one() -> None:
    assert load(DQNConfig, CARTPOLE).learner.threads == 1 == LearnerConfig().threads


def test_the_old_learner_num_threads_key_is_refused_with_its_new_name(tmp_path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("learner:\n  device: cpu\n  num_threads: 2\n")
    renamed = "learner.num_threads was renamed learner.threads; set learner.threads instead (same values)"
    for path, overrides in ((old, []), (CARTPOLE, ["learner.num_threads=2"])):  # a YAML file, a --set
        with pytest.raises(ConfigError) as e:
            load(DQNConfig, path, overrides)
        assert str(e.value) == renamed
    assert load(DQNConfig, CARTPOLE, ["learner.threads=2"]).learner.threads == 2
