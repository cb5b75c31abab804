"""components/device.py: device names, the GPU checks and their messages, process settings, and a scan
of components/ for tensor factories that would fall back to torch's default device."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from components import device as device_module
from components.config import ConfigError, build, load
from components.device import (
    Placement,
    autocast,
    check_device_name,
    check_precision,
    describe_device,
    fused_optimizer,
    make_optimizer,
    resolve_device,
    resolve_placement,
    restore_optimizer,
    setup_process,
    to_cpu,
)

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
# torch functions that create a tensor on torch's default device unless given ``device=``.
# ``as_tensor`` is left out: components use it only to wrap a numpy batch before an explicit ``.to()``.
FACTORIES = {
    "zeros",
    "ones",
    "empty",
    "full",
    "rand",
    "randn",
    "randint",
    "randperm",
    "arange",
    "linspace",
    "logspace",
    "eye",
    "tensor",
    "scalar_tensor",
    "Generator",
}

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:", "cuda:x", "cuda0", "cuda:0:1", ""])
def test_device_names_outside_the_allowed_forms_are_refused(name: str) -> None:
    with pytest.raises(
        ConfigError, match=r"train\.device: .* is not a device; allowed: auto, cpu, cuda, cuda:N"
    ):
        check_device_name(name, "train.device")


def test_cpu_and_auto_resolve_to_a_concrete_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto == torch.device("cuda", torch.cuda.current_device())
    else:
        assert auto == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_is_refused_where_torch_sees_none(name: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_device(name, "train.device")
    assert str(e.value) == f"train.device: {name} was asked for but torch sees no GPU; use auto or cpu"


@no_gpu
def test_the_dqn_learner_keeps_its_message() -> None:
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda", "learner.device")
    assert str(e.value) == "learner.device: cuda was asked for but torch sees no GPU; use auto or cpu"


@pytest.fixture
def one_fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torch reports one GPU, cuda:0 (nothing is run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    yield


def test_gpu_names_resolve_to_an_indexed_device(one_fake_gpu: None) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # with its index: compares equal to tensors'
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_a_gpu_index_beyond_what_torch_sees_is_refused(one_fake_gpu: None) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda:1", "train.device")
    assert str(e.value) == (
        "train.device: cuda:1 was asked for but torch sees 1 GPU (cuda:0); "
        "allowed here: auto, cpu, cuda, cuda:0"
    )


def test_bf16_is_refused_on_a_gpu_without_it(one_fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    with pytest.raises(ConfigError, match="train.precision: bf16 was asked for but Old GPU has no bf16"):
        check_precision("bf16", torch.device("cuda", 0))
    check_precision("fp32", torch.device("cuda", 0))
    check_precision("bf16", torch.device("cpu"))  # every CPU autocasts to bf16


def test_threads_are_set_and_zero_leaves_torchs_default() -> None:
    before = torch.get_num_threads()
    try:
        setup_process(torch.device("cpu"), 1)
        assert torch.get_num_threads() == 1
        setup_process(torch.device("cpu"), 0)
        assert torch.get_num_threads() == 1  # untouched
    finally:
        torch.set_num_threads(before)


def test_bf16_autocast_lowers_matmuls_and_fp32_changes_nothing() -> None:
    a = torch.randn(4, 4, device="cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ a).dtype == torch.float32
        assert not torch.is_autocast_enabled("cpu")


def test_describe_device_names_the_gpu(one_fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert describe_device(torch.device("cuda", 0)) == {"device": "cuda:0", "gpu_name": "NVIDIA H200"}
    assert describe_device(torch.device("cpu")) == {"device": "cpu"}


def test_to_cpu_keeps_the_structure() -> None:
    state = {"a": torch.ones(2, device="cpu"), "b": [torch.zeros(1, device="cpu"), 3], "c": (1.5, "x")}
    out = to_cpu(state)
    assert out["b"][1] == 3 and out["c"] == (1.5, "x") and torch.equal(out["a"], state["a"])


def test_a_loaded_optimizer_keeps_its_own_fused_setting() -> None:
    """A GPU run's Adam is fused; torch's load_state_dict hands that flag to the loading optimizer.
    On the CPU the trainer puts its own back (None) and the step counter where that path keeps it."""
    assert fused_optimizer(torch.device("cpu")) is None and fused_optimizer(torch.device("cuda", 0)) is True
    p = nn.Parameter(torch.ones(3, device="cpu"))
    writer = torch.optim.Adam([p], lr=0.1, fused=True)  # the fused kernel, here on the CPU
    p.grad = torch.ones(3, device="cpu")
    writer.step()
    q = nn.Parameter(p.detach().clone())
    reader = torch.optim.Adam([q], lr=0.1)
    reader.load_state_dict(copy.deepcopy(writer.state_dict()))  # as through torch.save / torch.load
    assert reader.param_groups[0]["fused"] is True  # the writer's flag
    restore_optimizer(reader)
    assert reader.param_groups[0]["fused"] is None and reader.state[q]["step"].device.type == "cpu"
    for param, opt in ((p, writer), (q, reader)):
        param.grad = torch.full((3,), 0.5, device="cpu")
        opt.step()
    torch.testing.assert_close(q, p)  # the same update, by either path
    assert reader.state[q]["step"].item() == 2


def test_a_capturable_rmsprop_checkpoint_resumes_on_the_cpu() -> None:
    """A CUDA RMSprop is capturable (its step counter on the GPU); a CPU reader must not inherit the
    flag: capturable RMSprop refuses CPU tensors at its next step."""
    p = nn.Parameter(torch.ones(3, device="cpu"))
    writer = torch.optim.RMSprop([p], lr=0.1)
    p.grad = torch.ones(3, device="cpu")
    writer.step()
    state = copy.deepcopy(writer.state_dict())
    state["param_groups"][0]["capturable"] = True  # as a CUDA trainer writes it
    q = nn.Parameter(p.detach().clone())
    reader = make_optimizer("rmsprop", [q], torch.device("cpu"), lr=0.1)
    reader.load_state_dict(state)
    restore_optimizer(reader)
    assert reader.param_groups[0]["capturable"] is False
    for param, opt in ((p, writer), (q, reader)):
        param.grad = torch.full((3,), 0.5, device="cpu")
        opt.step()
    torch.testing.assert_close(q, p)


@pytest.mark.parametrize("kind", ["adam", "adamw", "rmsprop"])
def test_optimizers_built_for_cuda_keep_their_step_counters_on_the_gpu(kind: str) -> None:
    """Torch puts an optimizer's step counter on the parameter's device only for a fused or capturable
    update (else on the CPU, beside CUDA moments: a device slip and a host read per step). Built here
    for cuda:0 on CPU parameters: nothing is stepped, only the flags are read."""
    opt = make_optimizer(kind, [nn.Parameter(torch.ones(2, device="cpu"))], torch.device("cuda", 0), lr=0.1)
    group = opt.param_groups[0]
    assert group.get("fused") or group.get("capturable"), group
    cpu = make_optimizer(kind, [nn.Parameter(torch.ones(2, device="cpu"))], torch.device("cpu"), lr=0.1)
    assert not (cpu.param_groups[0].get("fused") or cpu.param_groups[0].get("capturable"))


def test_moments_loaded_across_memory_layouts_take_their_parameters_layout() -> None:
    """A channels-last writer (a CUDA trainer's conv weights) loaded by an NCHW reader, and the reverse,
    both with fused Adam (the CUDA path, here on the CPU): the moments take the reader's layout and the
    next step is the writer's own. Without that, fused Adam updates the wrong elements."""
    torch.manual_seed(0)
    grads = [torch.randn(8, 3, 4, 4, device="cpu") for _ in range(2)]
    for writer_format, reader_format in (
        (torch.channels_last, torch.contiguous_format),
        (torch.contiguous_format, torch.channels_last),
    ):
        p = nn.Parameter(torch.randn(8, 3, 4, 4, device="cpu").contiguous(memory_format=writer_format))
        writer = torch.optim.Adam([p], lr=0.1, fused=True)
        p.grad = grads[0].contiguous(memory_format=writer_format)
        writer.step()
        q = nn.Parameter(p.detach().clone().contiguous(memory_format=reader_format))
        reader = torch.optim.Adam([q], lr=0.1, fused=True)
        reader.load_state_dict(copy.deepcopy(writer.state_dict()))
        restore_optimizer(reader)
        for key in ("exp_avg", "exp_avg_sq"):
            assert reader.state[q][key].stride() == q.stride(), key
        p.grad = grads[1].contiguous(memory_format=writer_format)
        q.grad = grads[1].contiguous(memory_format=reader_format)
        writer.step()
        reader.step()
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def _factory_calls_without_device(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
            and node.func.attr in FACTORIES
            and not any(k.arg == "device" for k in node.keywords)
        ):
            found.append(f"{path.relative_to(COMPONENTS.parent)}:{node.lineno}: torch.{node.func.attr}")
    return found


def test_no_tensor_factory_in_components_falls_back_to_the_default_device() -> None:
    files = sorted(COMPONENTS.rglob("*.py"))
    assert len(files) > 30
    slips = [hit for f in files for hit in _factory_calls_without_device(f)]
    assert slips == [], "give these an explicit device=:\n" + "\n".join(slips)


# -- the placement: a device section resolved once ------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each resolving step of components/device.py runs (each still does its work)."""
    calls = {"resolve_device": 0, "check_precision": 0, "setup_process": 0}
    for name in calls:
        real = getattr(device_module, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kw)

        monkeypatch.setattr(device_module, name, counting)
    return calls


def _gan(placement: Placement | None = None) -> Any:
    from components.gan.config import GanConfig
    from components.gan.trainer import GanTrainer

    cfg = build(
        GanConfig, {"train": {"steps": 2, "batch_size": 16, "device": "cpu"}, "eval": {"samples": 64}}
    )
    return GanTrainer(cfg, placement=placement)


def _seq(placement: Placement | None = None) -> Any:
    from components.seq.config import SeqConfig
    from components.seq.trainer import SeqTrainer

    overrides = [
        "task=adding",
        "model.hidden_size=8",
        "data.length=10",
        "train.batch_size=8",
        "train.device=cpu",
    ]
    return SeqTrainer(load(SeqConfig, None, overrides), placement)


def _learner(placement: Placement | None = None) -> Any:
    from components.nets.qnets import MLPQNetwork
    from components.rl.dqn.config import LearnerConfig
    from components.rl.dqn.learner import Learner

    return Learner(MLPQNetwork(4, 2, hidden=(8,), head_hidden=8), LearnerConfig(device="cpu"), placement)


TRAINERS = [
    ("components.gan.trainer", _gan),
    ("components.seq.trainer", _seq),
    ("components.rl.dqn.learner", _learner),
]


@pytest.mark.parametrize("module,make", TRAINERS, ids=["gan", "seq", "dqn_learner"])
def test_each_trainer_resolves_its_placement_once_and_takes_a_given_one_as_is(
    module: str, make: Any, counted: dict[str, int]
) -> None:
    import importlib

    mod = importlib.import_module(module)
    for name in counted:  # no side door: the trainer cannot call these but through the placement
        assert not hasattr(mod, name), f"{module} imports {name}"
    trainer = make()
    assert counted == {"resolve_device": 1, "check_precision": 1, "setup_process": 1}
    assert trainer.placement == Placement(torch.device("cpu"), "fp32", True, 1)
    assert trainer.device == trainer.placement.device
    again = make(trainer.placement)  # a caller that resolved one (the DQN pre-flight): not resolved again
    assert counted == {"resolve_device": 1, "check_precision": 1, "setup_process": 1}
    assert again.placement is trainer.placement


def test_a_placement_names_its_sections_keys_in_its_messages(
    one_fake_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.rl.dqn.config import LearnerConfig
    from components.seq.config import TrainConfig

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    with pytest.raises(ConfigError) as e:
        resolve_placement(LearnerConfig(device="cuda", precision="bf16"))
    assert str(e.value) == "learner.precision: bf16 was asked for but Old GPU has no bf16 support; use fp32"
    with pytest.raises(ConfigError) as e:
        resolve_placement(TrainConfig(device="cuda:1"))
    assert str(e.value).startswith("train.device: cuda:1 was asked for but torch sees 1 GPU (cuda:0)")


def test_a_placement_sets_the_process_up_and_autocasts_as_its_precision_says() -> None:
    from components.gan.config import TrainConfig

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        p = resolve_placement(TrainConfig(device="cpu", precision="bf16", threads=1))
        assert torch.get_num_threads() == 1
        assert p.bf16 and not p.cuda and p.describe() == {"device": "cpu", "precision": "bf16"}
        a = torch.randn(4, 4, device="cpu")
        with p.autocast():
            assert (a @ a).dtype == torch.bfloat16
        torch.set_num_threads(2)
        p32 = resolve_placement(TrainConfig(device="cpu", threads=0))
        assert torch.get_num_threads() == 2  # 0 leaves torch's setting alone
        with p32.autocast():
            assert (a @ a).dtype == torch.float32
    finally:
        torch.set_num_threads(before)
