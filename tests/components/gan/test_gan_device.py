"""The GAN trainer on a device: nothing on torch's default device, checkpoints across devices, bf16
autocast, channels-last, and (marked ``cuda``) one step of every objective on a GPU."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from components import device as device_module
from components.config import ConfigError, build, load
from components.gan import losses
from components.gan import trainer as trainer_module
from components.gan.config import GanConfig
from components.gan.nets import MLPDiscriminator
from components.gan.trainer import GanTrainer

LOSSES = ["minimax", "nonsaturating", "wgan", "wgan_gp"]
RING8_WGAN_GP: dict[str, Any] = {"train": {"loss": "wgan_gp"}}
DIGITS_DCGAN: dict[str, Any] = {
    "data": {"kind": "digits"},
    "model": {"arch": "dcgan", "z_dim": 8, "hidden": 8, "conv_stages": 2},
    "train": {"loss": "nonsaturating", "ema_half_life": 0.5},
}
MNIST_DCGAN: dict[str, Any] = {
    "data": {"kind": "mnist"},
    "model": {"arch": "dcgan", "z_dim": 8, "hidden": 4, "conv_stages": 2},
    "train": {"loss": "wgan_gp", "ema_half_life": 0.5},
}
DIGITS_DCGAN_GP: dict[str, Any] = {**DIGITS_DCGAN, "train": {"loss": "wgan_gp"}}
MNIST_CONDITIONAL: dict[str, Any] = {
    **MNIST_DCGAN,
    "model": {**MNIST_DCGAN["model"], "conditional": True},
}
FIXED_GAUSSIAN: dict[str, Any] = {
    "data": {"kind": "gaussian"},
    "model": {"generator": "fixed_gaussian", "hidden": 16, "layers": 2},
    "train": {"loss": "nonsaturating"},
}


def make(spec: dict[str, Any], device: str = "cpu", **train: Any) -> GanTrainer:
    t = {**spec.get("train", {}), "steps": 2, "batch_size": 16, "threads": 1, "device": device, **train}
    return GanTrainer(build(GanConfig, {**spec, "train": t, "report_every": 2, "eval": {"samples": 64}}))


def tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in tensors(v)]
    return []


def optimizer_state(trainer: GanTrainer) -> list[torch.Tensor]:
    """Every tensor of both optimizers' state, step counters included."""
    return [
        t
        for opt in (trainer.opt_g, trainer.opt_d)
        if opt is not None
        for t in tensors(opt.state_dict()["state"])
    ]


def assert_on(trainer: GanTrainer, device: torch.device) -> None:
    owned = [*trainer.generator.parameters(), *trainer.critic.parameters(), trainer.eval_z, trainer.eval_real]
    state = optimizer_state(trainer)
    assert any(t.dim() == 0 for t in state), "no step counter: the optimizers have not stepped yet"
    owned += state
    owned += [t for t in (trainer.source.data, trainer.source.labels, trainer.source.modes) if t is not None]
    if trainer.average is not None:  # the weight average, batch-norm statistics included
        owned += tensors(trainer.average.model.state_dict())
    if trainer.best is not None and trainer.best.state is not None:
        owned += tensors(trainer.best.state)
    assert {t.device for t in owned} == {device}
    assert trainer.rng.device == device


# -- nothing is created on torch's default device ----------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [RING8_WGAN_GP, DIGITS_DCGAN, DIGITS_DCGAN_GP, MNIST_DCGAN, MNIST_CONDITIONAL, FIXED_GAUSSIAN],
    ids=[
        "mlp-ring8-wgan_gp",
        "dcgan-digits-ns-ema",
        "dcgan-digits-wgan_gp",
        "dcgan-mnist-ema",
        "conditional-mnist-wgan_gp",
        "fixed-gaussian",
    ],
)
def test_a_cpu_trainer_creates_nothing_on_the_default_device(
    spec: dict[str, Any], meta_default_device: None, tmp_path: Path
) -> None:
    """Default device meta, trainer on the CPU: a tensor made without the trainer's device would be a
    meta tensor, and the step would fail on it (mixed devices, or no data to read)."""
    t = make(spec)
    metrics = t.run_chunk()  # critic and generator steps, metrics
    assert t.position == 2 and all(torch.isfinite(torch.tensor(v, device="cpu")) for v in metrics.values())
    paths = t.write_artifacts(tmp_path, final=True)  # figures, generator.pt, samples.pt
    assert all(p.stat().st_size > 0 for p in paths)
    assert_on(t, torch.device("cpu"))
    assert {x.device.type for x in tensors(t.state_dict())} == {"cpu"}
    if t.average is not None:  # evaluated beside the live generator, and offered to the best
        assert {"raw_eval_distance", "best_eval_distance"} <= set(metrics)
        assert t.best is not None and t.best.state is not None


def test_gradient_penalty_keeps_its_inputs_dtype_and_device(meta_default_device: None) -> None:
    """float64 on the CPU while the default is meta; α is drawn there from the given generator."""
    with torch.device("cpu"):
        critic = MLPDiscriminator((3,), hidden=8, layers=2).double()
    g = torch.Generator(device="cpu").manual_seed(0)
    real = torch.randn(6, 3, dtype=torch.float64, generator=g, device="cpu")
    fake = torch.randn(6, 3, dtype=torch.float64, generator=g, device="cpu")
    gp = losses.gradient_penalty(critic, real, fake, generator=g)
    assert (gp.dtype, gp.device.type) == (torch.float64, "cpu")
    gp.backward()  # the penalty trains the weights (not the last bias: ∇ₓf does not depend on it)
    grads = [p.grad for p in critic.parameters() if p.grad is not None]
    assert len(grads) == len(list(critic.parameters())) - 1
    assert all(g.dtype == torch.float64 and g.device.type == "cpu" for g in grads)
    # The same α by hand: the penalty equals its definition computed in float64.
    alpha = torch.rand(
        6, generator=torch.Generator(device="cpu").manual_seed(1), dtype=torch.float64, device="cpu"
    )
    x_hat = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    hand = ((grad.norm(dim=1) - 1) ** 2).mean()
    assert losses.gradient_penalty(critic, real, fake, alpha=alpha).item() == pytest.approx(
        hand.item(), rel=1e-12
    )


def test_gradient_penalty_on_a_non_default_device() -> None:
    """Inputs and critic on meta while the default is the CPU: α and the result follow the inputs."""
    critic = MLPDiscriminator((4,), hidden=8, layers=2).to("meta")
    real, fake = torch.empty(5, 4, device="meta"), torch.empty(5, 4, device="meta")
    gp = losses.gradient_penalty(critic, real, fake)
    assert gp.device.type == "meta" and gp.shape == ()


# -- the device is checked when the trainer is built -------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_gpu_on_a_cpu_only_machine_is_refused_when_the_trainer_is_built(name: str) -> None:
    cfg = build(GanConfig, {"train": {"device": name}})  # a well-formed name: the config loads
    with pytest.raises(ConfigError) as e:
        GanTrainer(cfg)
    assert str(e.value) == f"train.device: {name} was asked for but torch sees no GPU; use auto or cpu"


def test_a_device_name_that_is_not_one_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="train.device: 'gpu' is not a device; allowed: auto, cpu, cuda"):
        load(GanConfig, None, ["train.device=gpu"])
    with pytest.raises(ConfigError, match="train.precision: 'fp16' is not allowed; allowed: 'fp32', 'bf16'"):
        load(GanConfig, None, ["train.precision=fp16"])
    with pytest.raises(ConfigError, match="unknown key 'threads'"):
        load(GanConfig, None, ["threads=1"])  # moved to train.threads


def test_the_trainer_sets_the_configured_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make(RING8_WGAN_GP)
        assert torch.get_num_threads() == 1  # train.threads defaults to 1
        torch.set_num_threads(2)
        make(RING8_WGAN_GP, threads=0)
        assert torch.get_num_threads() == 2  # 0 leaves torch's setting alone
    finally:
        torch.set_num_threads(before)


# -- checkpoints ----------------------------------------------------------------------------------


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "spec",
    [RING8_WGAN_GP, DIGITS_DCGAN, MNIST_DCGAN, MNIST_CONDITIONAL],
    ids=["ring8-wgan_gp", "digits-dcgan-ema", "mnist-ema", "mnist-conditional"],
)
def test_a_checkpoint_restores_into_a_fresh_trainer_and_training_continues_identically(
    spec: dict[str, Any],
) -> None:
    straight = make(spec, steps=4)
    straight.run_chunk()
    straight.run_chunk()
    first = make(spec, steps=4)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    assert state["rng_device"] == "cpu" and {t.device.type for t in tensors(state)} == {"cpu"}
    resumed = make(spec, steps=4)
    resumed.load_state_dict(state)
    resumed.run_chunk()
    for a, b in zip(straight.state_dict()["generator"].values(), resumed.state_dict()["generator"].values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.critic.parameters(), resumed.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(straight.rng.get_state(), resumed.rng.get_state())
    assert resumed.history["d_loss"] == straight.history["d_loss"]
    assert straight.average is not None and resumed.average is not None
    assert resumed.average.updates == straight.average.updates == 4
    for a, b in zip(
        straight.average.model.state_dict().values(), resumed.average.model.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert straight.best is not None and resumed.best is not None
    assert (resumed.best.value, resumed.best.step) == (straight.best.value, straight.best.step)


def test_a_checkpoint_from_another_kind_of_device_reseeds_the_stream_reproducibly() -> None:
    """CPU and CUDA generators are different algorithms: their states do not transfer. The weights
    and position do; the stream restarts from (seed, position), the same way every time."""
    source = make(RING8_WGAN_GP, steps=4)
    source.run_chunk()
    state = roundtrip(source.state_dict())
    state["rng_device"] = "cuda"  # as if written on a GPU, whose Adam is fused
    for opt in ("opt_g", "opt_d"):
        state[opt]["param_groups"][0]["fused"] = True
    a, b = make(RING8_WGAN_GP, steps=4), make(RING8_WGAN_GP, steps=4)
    a.load_state_dict(state)
    b.load_state_dict(state)
    assert all(o.param_groups[0]["fused"] is None for o in (a.opt_g, a.opt_d) if o is not None)
    assert a.position == 2 and not torch.equal(a.rng.get_state(), source.rng.get_state())
    assert torch.equal(a.rng.get_state(), b.rng.get_state())
    for p, q in zip(a.generator.parameters(), source.generator.parameters()):
        assert torch.equal(p, q)


RING8_WGAN_RMSPROP: dict[str, Any] = {"train": {"loss": "wgan"}}  # RMSprop, as Arjovsky et al.


def test_a_cuda_rmsprop_checkpoint_resumes_on_the_cpu() -> None:
    """On CUDA RMSprop is capturable (its step counter stays on the GPU, beside its moments); the flag
    travels in the checkpoint's param groups and must not reach a CPU trainer, where capturable
    RMSprop refuses to step. Resumed, the run continues as one that never stopped."""
    straight = make(RING8_WGAN_RMSPROP, steps=4)
    assert isinstance(straight.opt_d, torch.optim.RMSprop)
    straight.run_chunk()
    straight.run_chunk()
    first = make(RING8_WGAN_RMSPROP, steps=4)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    for opt in ("opt_g", "opt_d"):
        state[opt]["param_groups"][0]["capturable"] = True  # as a CUDA trainer writes it
    resumed = make(RING8_WGAN_RMSPROP, steps=4)
    resumed.load_state_dict(state)
    assert all(not g["capturable"] for o in (resumed.opt_g, resumed.opt_d) if o for g in o.param_groups)
    resumed.run_chunk()
    for a, b in zip(straight.critic.parameters(), resumed.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_cpu_checkpoint_resumes_channels_last_with_fused_adam(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA layout and optimizer (channels-last convs, fused Adam), forced on the CPU, resumed from a
    plain CPU checkpoint: Adam's moments take their conv weights' layout (fused Adam with moments laid
    out otherwise updates the wrong elements here and is refused on CUDA) and training continues as a
    run that never stopped, within the rounding channels-last changes."""
    straight = make(DIGITS_DCGAN_GP, steps=4)
    straight.run_chunk()
    straight.run_chunk()
    first = make(DIGITS_DCGAN_GP, steps=4)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    monkeypatch.setattr(trainer_module, "prefers_channels_last", lambda device: True)
    monkeypatch.setattr(device_module, "fused_optimizer", lambda device: True)
    monkeypatch.setattr(trainer_module, "fused_optimizer", lambda device: True, raising=False)
    resumed = make(DIGITS_DCGAN_GP, steps=4)
    assert resumed.channels_last and resumed.opt_d.param_groups[0]["fused"]
    resumed.load_state_dict(state)
    for opt in (resumed.opt_g, resumed.opt_d):
        assert opt is not None
        for p in opt.param_groups[0]["params"]:
            for key in ("exp_avg", "exp_avg_sq"):
                assert opt.state[p][key].stride() == p.stride(), (key, tuple(p.shape))
    resumed.run_chunk()
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(straight.critic.parameters(), resumed.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# -- bf16 autocast on the CPU -----------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_one_bf16_step_of_each_loss_runs_with_fp32_losses(loss: str) -> None:
    t = make({"train": {"loss": loss}}, precision="bf16")
    stats = t.critic_step()
    assert all(v.dtype == torch.float32 for v in stats.values()), {k: v.dtype for k, v in stats.items()}
    g = t.generator_step()
    assert g.dtype == torch.float32 and torch.isfinite(g)
    assert all(p.dtype == torch.float32 for p in t.generator.parameters())  # weights stay fp32
    m = t.run_chunk()
    assert all(torch.isfinite(torch.tensor(v, device="cpu")) for v in m.values())


def test_one_bf16_step_of_a_dcgan_runs() -> None:
    t = make(DIGITS_DCGAN_GP, precision="bf16")
    assert t.critic_step()["gradient_penalty"].dtype == torch.float32
    assert torch.isfinite(t.generator_step())


def test_losses_on_bf16_scores_are_computed_in_fp32() -> None:
    g = torch.Generator(device="cpu").manual_seed(0)
    real = torch.randn(64, generator=g, device="cpu").bfloat16()
    fake = torch.randn(64, generator=g, device="cpu").bfloat16()
    for fn, args in [
        (losses.minimax_value, (real, fake)),
        (losses.saturating_generator_loss, (fake,)),
        (losses.nonsaturating_generator_loss, (fake,)),
        (losses.wasserstein_estimate, (real, fake)),
        (losses.wasserstein_generator_loss, (fake,)),
    ]:
        out = fn(*args)
        exact = fn(*(a.float() for a in args))  # the same bf16 values, reduced in fp32
        assert out.dtype == torch.float32 and out.item() == exact.item(), fn.__name__


def test_gradient_penalty_under_bf16_autocast_matches_fp32() -> None:
    """A 3×64 critic scaled so its gradient norms are far from 1 (a penalty of ~1.2, not a small
    difference of nearly equal numbers).

    bf16 keeps 8 significant bits (relative rounding 2⁻⁹ ≈ 0.2 %). The matmuls of the forward and of
    the input gradient run in bf16, but with x̂, the gradient's norm and the mean in fp32 the penalty
    stays within 1 % of fp32 (measured: 0.14 %) and its gradient within 2 % (measured: 0.3 %).
    """
    torch.manual_seed(0)
    with torch.device("cpu"):
        critic = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    with torch.no_grad():
        critic[-1].weight.mul_(20.0)
    score = lambda x: critic(x).squeeze(1)  # noqa: E731
    g = torch.Generator(device="cpu").manual_seed(1)
    real, fake = (
        torch.randn(256, 8, generator=g, device="cpu"),
        torch.randn(256, 8, generator=g, device="cpu"),
    )
    alpha = torch.rand(256, generator=g, device="cpu")
    gp32 = losses.gradient_penalty(score, real, fake, alpha=alpha)  # type: ignore[arg-type]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert critic(real).dtype == torch.bfloat16  # the forward really runs in bf16
        gp16 = losses.gradient_penalty(score, real, fake, alpha=alpha)  # type: ignore[arg-type]
    assert gp16.dtype == torch.float32
    assert gp32.item() > 0.5
    assert gp16.item() == pytest.approx(gp32.item(), rel=0.01)
    # Its gradient (what trains the critic) agrees too.
    (d32,) = torch.autograd.grad(gp32, critic[-1].weight)
    (d16,) = torch.autograd.grad(gp16, critic[-1].weight)
    assert (d16 - d32).norm() / d32.norm() < 0.02


# -- channels-last ------------------------------------------------------------------------------------


def test_channels_last_trains_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA layout, forced on the CPU: memory format changes speed, never the arithmetic's result
    beyond rounding."""
    plain = make(DIGITS_DCGAN_GP)
    monkeypatch.setattr(trainer_module, "prefers_channels_last", lambda device: True)
    nhwc = make(DIGITS_DCGAN_GP)
    assert nhwc.channels_last and not plain.channels_last
    assert nhwc.source.data is not None and nhwc.source.data.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in nhwc.critic.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for t in (plain, nhwc):
        t.critic_step()
        t.generator_step()
    for a, b in zip(plain.generator.parameters(), nhwc.generator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(plain.critic.parameters(), nhwc.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# -- on a GPU -----------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(
    "spec",
    [
        RING8_WGAN_GP,
        {"train": {"loss": "wgan"}},
        {"train": {"loss": "minimax"}},
        DIGITS_DCGAN,
        DIGITS_DCGAN_GP,
        MNIST_DCGAN,
        MNIST_CONDITIONAL,
        FIXED_GAUSSIAN,
    ],
    ids=[
        "ring8-wgan_gp",
        "ring8-wgan",
        "ring8-minimax",
        "digits-dcgan",
        "digits-wgan_gp",
        "mnist-wgan_gp",
        "mnist-conditional-wgan_gp",
        "fixed-gaussian",
    ],
)
def test_one_chunk_on_cuda(spec: dict[str, Any], precision: str, tmp_path: Path) -> None:
    t = make(spec, device="cuda", precision=precision)
    device = torch.device("cuda", torch.cuda.current_device())
    assert t.device == device and t.channels_last == t.source.is_image
    m = t.run_chunk()
    assert all(torch.isfinite(torch.tensor(v, device="cpu")) for v in m.values()), m
    assert_on(t, device)
    assert torch.backends.cuda.matmul.allow_tf32
    t.write_artifacts(tmp_path)
    assert {x.device.type for x in tensors(t.state_dict())} == {"cpu"}


@pytest.mark.cuda
@pytest.mark.parametrize(("src", "dst"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_checkpoints_cross_between_cuda_and_cpu(src: str, dst: str) -> None:
    first = make(DIGITS_DCGAN, device=src, steps=4)
    first.run_chunk()
    state = roundtrip(first.state_dict())
    assert {t.device.type for t in tensors(state)} == {"cpu"} and state["rng_device"] == src
    resumed = make(DIGITS_DCGAN, device=dst, steps=4)
    resumed.load_state_dict(state)
    assert resumed.position == 2
    for a, b in zip(first.generator.parameters(), resumed.generator.parameters()):
        assert b.device.type == dst
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0)
    assert {t.device.type for t in optimizer_state(resumed)} == {dst}  # step counters included
    resumed.run_chunk()  # and it trains on
    assert resumed.position == 4
