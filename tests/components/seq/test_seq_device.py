"""The sequence trainer on a device: nothing on torch's default device, checkpoints across devices,
bf16 autocast, and (marked ``cuda``) one chunk of each cell and implementation on a GPU."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from components.config import ConfigError, load
from components.seq.config import SeqConfig
from components.seq.trainer import SeqTrainer

TINY_LM = [
    "task=char_lm",
    "data.source=markov",
    "data.markov_length=6000",
    "model.hidden_size=12",
    "model.num_layers=2",
    "model.embed_dim=4",
    "model.dropout=0.2",
    "train.batch_size=4",
    "train.bptt=16",
    "train.steps=4",
    "train.report_every=2",
    "train.eval_chars=0",
    "sample.length=20",
    "sample.prime=ab",
]
TINY_ADDING = [
    "task=adding",
    "model.hidden_size=8",
    "data.length=10",
    "train.batch_size=8",
    "train.steps=4",
    "train.report_every=2",
    "train.eval_batches=2",
]
CELLS = [
    pytest.param(["model.cell=lstm", "model.impl=fused"], id="lstm-fused"),
    pytest.param(["model.cell=lstm", "model.impl=explicit"], id="lstm-explicit"),
    pytest.param(["model.cell=gru", "model.impl=fused"], id="gru-fused"),
    pytest.param(["model.cell=gru", "model.impl=explicit", "model.gru_reset_after=true"], id="gru-explicit"),
]


def make(*overrides: str, device: str = "cpu") -> SeqTrainer:
    return SeqTrainer(load(SeqConfig, None, [*overrides, f"train.device={device}"]))


def tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in tensors(v)]
    return []


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_a_cpu_trainer_creates_nothing_on_the_default_device(
    task: list[str], cell: list[str], meta_default_device: None, tmp_path: Path
) -> None:
    """Default device meta, trainer on the CPU: any tensor made without the trainer's device is a meta
    tensor and the step, the evaluation or the sampling fails on it."""
    t = make(*task, *cell)
    m = t.run_chunk()  # train steps, held-out evaluation
    assert t.position == 2 and all(torch.isfinite(torch.tensor(v, device="cpu")) for v in m.values())
    assert all(p.device.type == "cpu" for p in t.model.parameters())
    assert all(p.stat().st_size > 0 for p in t.write_artifacts(tmp_path, final=True))  # samples, plots
    assert {x.device.type for x in tensors(t.state_dict())} == {"cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_a_gpu_on_a_cpu_only_machine_is_refused_when_the_trainer_is_built() -> None:
    cfg = load(SeqConfig, None, [*TINY_ADDING, "train.device=cuda"])
    with pytest.raises(ConfigError) as e:
        SeqTrainer(cfg)
    assert str(e.value) == "train.device: cuda was asked for but torch sees no GPU; use auto or cpu"


def test_bad_device_and_precision_names_are_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="train.device: 'cuda1' is not a device; allowed: auto, cpu, cuda"):
        load(SeqConfig, None, ["train.device=cuda1"])
    with pytest.raises(ConfigError, match="train.precision"):
        load(SeqConfig, None, ["train.precision=bf32"])


def test_threads_default_to_one() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        t = make(*TINY_ADDING)
        assert t.cfg.train.threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_a_checkpoint_restores_into_a_fresh_trainer_and_training_continues_identically(
    task: list[str],
) -> None:
    straight = make(*task)
    straight.run_chunk()
    straight.run_chunk()
    first = make(*task)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    assert {x.device.type for x in tensors(state)} == {"cpu"} and "cuda_rng" not in state
    resumed = make(*task)
    resumed.load_state_dict(state)
    resumed.run_chunk()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert resumed.history["val_loss"][-1] == straight.history["val_loss"][-1]


def test_a_batch_stream_from_another_kind_of_device_is_reseeded_reproducibly() -> None:
    first = make(*TINY_ADDING)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    state["task"]["generator_device"] = "cuda"  # as if written on a GPU
    a, b = make(*TINY_ADDING), make(*TINY_ADDING)
    a.load_state_dict(state)
    b.load_state_dict(state)
    ga, gb = a.task.generator, b.task.generator  # type: ignore[union-attr]
    assert torch.equal(ga.get_state(), gb.get_state())
    assert not torch.equal(ga.get_state(), first.task.generator.get_state())  # type: ignore[union-attr]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_one_bf16_chunk_runs_on_the_cpu_with_fp32_losses(task: list[str], cell: list[str]) -> None:
    t = make(*task, *cell, "train.precision=bf16")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = t.task.train_loss()
    assert loss.dtype == torch.float32
    m = t.run_chunk()
    assert all(torch.isfinite(torch.tensor(v, device="cpu")) for v in m.values())
    assert all(p.dtype == torch.float32 for p in t.model.parameters())


def test_bf16_training_follows_fp32_closely() -> None:
    """Same seed, same batches: after 4 steps of the adding problem the two runs' weights differ by
    bf16 rounding only, far less than the steps moved them."""
    runs = {p: make(*TINY_ADDING, f"train.precision={p}") for p in ("fp32", "bf16")}
    start = [w.detach().clone() for w in runs["fp32"].model.parameters()]
    for t in runs.values():
        t.train_steps(4)
    moved = sum((w - s).norm() ** 2 for w, s in zip(runs["fp32"].model.parameters(), start)) ** 0.5
    apart = sum((a - b).norm() ** 2 for a, b in zip(*(t.model.parameters() for t in runs.values()))) ** 0.5
    assert apart < 0.1 * moved


class DtypesSeen(TorchDispatchMode):
    """The dtypes of the floating-point tensors the ops produce while it is active (autocast's casts
    happen above this level: what is recorded is what the kernels computed in)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, torch.dtype]] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tensors(list(out) if isinstance(out, tuple | list) else out):
            if t.is_floating_point():
                self.seen.add((str(func), t.dtype))
        return out


def watch(module: torch.nn.Module) -> tuple[DtypesSeen, list[torch.dtype]]:
    """Record the dtypes of what ``module``'s forward computes, and of its first output."""
    mode, outputs = DtypesSeen(), []

    def enter(m: Any, args: Any) -> None:
        mode.__enter__()

    def leave(m: Any, args: Any, out: Any) -> None:
        mode.__exit__(None, None, None)
        outputs.append(tensors(out)[0].dtype)

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave)
    return mode, outputs


DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.cuda)]
HALF = {torch.float16, torch.bfloat16}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_bf16_runs_the_fused_recurrent_kernel_in_fp32_and_the_output_layer_in_bf16(
    task: list[str], cell: str, device: str
) -> None:
    """Autocast would run cuDNN's LSTM/GRU in fp16 (whatever its dtype, with no loss scale) and, on the
    CPU, the LSTM in bf16 and the GRU's matmuls in bf16: the fused kernel runs outside it, in fp32,
    while the layers around it (here the output layer) compute in bf16."""
    t = make(*task, f"model.cell={cell}", "model.impl=fused", "train.precision=bf16", device=device)
    model: Any = t.model
    head = model.head if hasattr(model, "head") else model.fc
    inside, rnn_out = watch(model.rnn)
    _, head_out = watch(head)
    t.train_steps(2)  # the second window starts from the first one's carried state (char_lm)
    assert rnn_out == [torch.float32, torch.float32]
    assert inside.seen and not {op for op, dtype in inside.seen if dtype in HALF}, inside.seen
    assert head_out == [torch.bfloat16, torch.bfloat16]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_runs_the_explicit_cells_matmuls_in_bf16_and_keeps_their_state_in_fp32(cell: str) -> None:
    t = make(*TINY_LM, f"model.cell={cell}", "model.impl=explicit", "train.precision=bf16")
    model: Any = t.model
    inside, rnn_out = watch(model.rnn)
    t.train_steps(1)
    matmuls = {dtype for op, dtype in inside.seen if op.startswith(("aten.mm", "aten.addmm"))}
    assert matmuls == {torch.bfloat16} and rnn_out == [torch.float32]


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_one_chunk_on_cuda(task: list[str], cell: list[str], precision: str, tmp_path: Path) -> None:
    t = make(*task, *cell, f"train.precision={precision}", device="cuda")
    device = torch.device("cuda", torch.cuda.current_device())
    assert t.device == device and all(p.device == device for p in t.model.parameters())
    m = t.run_chunk()
    assert all(torch.isfinite(torch.tensor(v, device="cpu")) for v in m.values()), m
    # Optimizer state, step counters included (fused AdamW keeps them on the GPU).
    assert {x.device for x in tensors(t.optimizer.state_dict()["state"])} == {device}
    t.write_artifacts(tmp_path)
    state = t.state_dict()
    assert {x.device.type for x in tensors(state)} == {"cpu"} and "cuda_rng" in state


@pytest.mark.cuda
@pytest.mark.parametrize(("src", "dst"), [("cuda", "cpu"), ("cpu", "cuda")])
@pytest.mark.parametrize("task", [TINY_LM, TINY_ADDING], ids=["char_lm", "adding"])
def test_checkpoints_cross_between_cuda_and_cpu(task: list[str], src: str, dst: str) -> None:
    first = make(*task, device=src)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    resumed = make(*task, device=dst)
    resumed.load_state_dict(state)
    for a, b in zip(first.model.parameters(), resumed.model.parameters()):
        assert b.device.type == dst
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0)
    resumed.run_chunk()  # the carried hidden state and optimizer state are on the new device
    assert resumed.position == 4
