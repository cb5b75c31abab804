"""The GAN trainer: n_critic discriminator/critic steps per generator step, scored at each report.

One class runs all four objectives, because they differ only in the loss functions and in what
happens after a critic step (weight clipping for WGAN); mimicry does the same. It follows adl's
trainer protocol, so ``adl train gan`` drives it with the local runner and ``adl sweep`` drives the
very same object inside Tune trials.

Devices: everything the trainer owns lives on ``train.device`` — networks, optimiser state, the data
(mixtures drawn there, finite sets copied there once), latent noise, the penalty's α, the metrics and
the tensors behind the figures; only final numbers and pictures come back to the host. On CUDA the
conv nets and image batches are channels-last, Adam is fused (RMSprop capturable, so its step counter
stays on the GPU too), and TF32 is on unless ``train.tf32``
is false; ``train.precision: bf16`` runs the forward passes under autocast on either device.

Randomness: network initialisation uses ``seed`` inside a forked CPU RNG (nothing leaks to the caller)
on the CPU, so a run starts from the same weights on every device. Data, latent noise and
interpolation weights come from one ``torch.Generator`` on the device (a CPU generator would cost a
host-to-device copy, and on CUDA a synchronisation, per draw); it is checkpointed, so a resumed run
continues the same stream on the same kind of device. CPU and CUDA generators are different
algorithms, so a checkpoint resumed on the other kind of device continues the weights, optimisers and
position exactly but re-seeds the stream from (seed, position). The evaluation batch (latents and real
samples) is drawn once from a CPU generator and moved, so it is the same on every device and the
reported curves move only because the generator does.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import ConfigError
from components.data_card import DataCard
from components.device import (
    autocast,
    check_precision,
    describe_device,
    make_optimizer,
    prefers_channels_last,
    resolve_device,
    restore_optimizer,
    setup_process,
    synchronize,
    to_cpu,
)
from components.gan import losses
from components.gan.config import GanConfig
from components.gan.data import DataSource, data_card, make_source
from components.gan.metrics import class_coverage, energy_distance, mode_stats
from components.gan.nets import build_networks
from components.gan.optimal import NormalPair, OptimalCheck

CURVE_KEYS = (
    "d_loss",
    "g_loss",
    "wasserstein_estimate",
    "minimax_value",
    "d_star_error",
    "eval_distance",
    "hq_fraction",
)


class GanTrainer:
    """Trains one generator against one discriminator/critic; ``position`` counts generator steps."""

    unit = "step"

    def __init__(self, cfg: GanConfig, source: DataSource | None = None) -> None:
        self.cfg = cfg
        t, m = cfg.train, cfg.model
        self.device = resolve_device(t.device, "train.device")
        check_precision(t.precision, self.device)
        setup_process(self.device, t.threads, t.tf32)
        cpu_source = source or make_source(cfg.data)
        self.loss = t.loss
        self.wgan = self.loss in ("wgan", "wgan_gp")
        with torch.device("cpu"), torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(cfg.seed)
            self.generator, self.critic = build_networks(
                m.arch,
                cpu_source.sample_shape,
                m.z_dim,
                m.hidden,
                m.layers,
                m.conv_stages,
                m.g_norm,
                m.d_norm,
                self.loss,
                m.generator,
                (m.generator_mean, m.generator_std),
            )
        self.channels_last = cpu_source.is_image and prefers_channels_last(self.device)
        for net in (self.generator, self.critic):
            net.to(self.device)
            if self.channels_last:  # 4-d weights only; torch's stubs omit this keyword
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # A fixed generator (model.generator: fixed_gaussian) has no parameters: only D is trained.
        self.fixed_generator = not any(True for _ in self.generator.parameters())
        # Weight averaging damps the mode hopping of GAN training (Yazıcı et al. 2019); the average is
        # only read (evaluation, samples, generator.pt), never trained.
        self.generator_ema = (
            copy.deepcopy(self.generator).requires_grad_(False)
            if t.ema and not self.fixed_generator
            else None
        )
        self.opt_g = None if self.fixed_generator else self._optimizer(self.generator, cfg.lr_g)
        self.opt_d = self._optimizer(self.critic, cfg.lr_d)
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed)
        eval_rng = torch.Generator(device="cpu").manual_seed(cfg.seed + 1_000_003)
        self.eval_z = torch.randn(cfg.eval.samples, m.z_dim, generator=eval_rng, device="cpu").to(self.device)
        self.eval_real = cpu_source.sample(min(cfg.eval.samples, 2000), eval_rng).to(self.device)
        self.data_card = data_card(cfg.data, cpu_source)
        self.source = cpu_source.to(self.device, self.channels_last)
        # A classic discriminator against a fixed normal generator is compared with D* (the theory check).
        self.optimal: OptimalCheck | None = None
        if self.fixed_generator and cfg.data.kind == "gaussian" and not self.wgan:
            pair = NormalPair(cfg.data.mean, cfg.data.std, m.generator_mean, m.generator_std)
            self.optimal = OptimalCheck(pair, self.device)
        self.position = 0
        self.total = t.steps
        self.history: dict[str, list[list[float]]] = {}
        self._scorer: Any = None

    def _optimizer(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "rmsprop":
            return make_optimizer("rmsprop", net.parameters(), self.device, lr=lr)
        return make_optimizer("adam", net.parameters(), self.device, lr=lr, betas=self.cfg.betas)

    def _autocast(self) -> Any:
        return autocast(self.device, self.cfg.train.precision)

    # -- one step each ------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.z_dim, generator=self.rng, device=self.device)

    def critic_step(self) -> dict[str, torch.Tensor]:
        """One discriminator/critic update on a fresh real batch and a batch of (fixed) fakes."""
        b = self.cfg.train.batch_size
        real = self.source.sample(b, self.rng)
        stats: dict[str, torch.Tensor] = {}
        with self._autocast():  # forward passes in bf16 if asked; losses reduce in fp32
            with torch.no_grad():
                fake = self.generator(self._noise(b))
            real_s, fake_s = self.critic(real), self.critic(fake)
            if self.wgan:
                w = losses.wasserstein_estimate(real_s, fake_s)
                loss = -w
                stats["wasserstein_estimate"] = w
                if self.loss == "wgan_gp":
                    gp = losses.gradient_penalty(self.critic, real, fake, generator=self.rng)
                    loss = loss + self.cfg.train.gp_weight * gp
                    stats["gradient_penalty"] = gp
            else:
                v = losses.minimax_value(real_s, fake_s)
                loss = -v
                stats["minimax_value"] = v
                stats["d_real"] = torch.sigmoid(real_s.float()).mean()
                stats["d_fake"] = torch.sigmoid(fake_s.float()).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        if self.loss == "wgan":
            losses.clip_weights_(self.critic, self.cfg.train.clip)
        stats["d_loss"] = loss
        return stats

    def generator_step(self) -> torch.Tensor:
        """One generator update against the current discriminator/critic; returns the G loss."""
        assert self.opt_g is not None, "a fixed generator takes no steps"
        with self._autocast():
            scores = self.critic(self.generator(self._noise(self.cfg.train.batch_size)))
            if self.wgan:
                loss = losses.wasserstein_generator_loss(scores)
            elif self.loss == "minimax":
                loss = losses.saturating_generator_loss(scores)
            else:
                loss = losses.nonsaturating_generator_loss(scores)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.generator_ema is not None:
            self._update_ema(self.cfg.train.ema)
        return loss

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        assert self.generator_ema is not None
        ema: list[torch.Tensor] = list(self.generator_ema.parameters())
        params: list[torch.Tensor] = list(self.generator.parameters())
        torch._foreach_lerp_(ema, params, 1.0 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)  # batch-norm statistics follow the live generator

    # -- the protocol -------------------------------------------------------------------------

    def run_chunk(self) -> dict[str, float]:
        """``report_every`` generator steps (fewer at the end), then score samples; returns metrics.

        With a fixed generator a step is ``n_critic`` discriminator steps and nothing else.
        """
        n = min(self.cfg.report_every, self.total - self.position)
        sums: dict[str, torch.Tensor] = {}
        n_critic = self.cfg.n_critic
        synchronize(self.device)
        t0 = time.perf_counter()
        for _ in range(n):
            for _ in range(n_critic):
                for k, v in self.critic_step().items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach()
            if not self.fixed_generator:
                g = self.generator_step().detach()
                sums["g_loss"] = sums["g_loss"] + g if "g_loss" in sums else g
            self.position += 1
        synchronize(self.device)  # CUDA queues work: stop the clock when it is done
        elapsed = time.perf_counter() - t0
        metrics = {k: float(s) / (n if k == "g_loss" else n * n_critic) for k, s in sums.items()}
        metrics["gen_steps_per_s"] = n / max(elapsed, 1e-9)
        metrics.update(self.evaluate())
        for k, value in metrics.items():
            self.history.setdefault(k, []).append([float(self.position), float(value)])
        return metrics

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples for ``z`` (default: the fixed evaluation batch) from the averaged generator if there is
        one, else the live one, in eval mode."""
        g = self.generator_ema if self.generator_ema is not None else self.generator
        was_training = g.training
        g.eval()
        try:
            return g(self.eval_z if z is None else z)
        finally:
            g.train(was_training)

    def evaluate(self) -> dict[str, float]:
        """Mixtures: modes, high-quality share, energy distance. Digits: Fréchet distance, classes.

        ``eval_distance`` is the one number every dataset reports (energy distance for vectors and
        user images, the Fréchet distance for digits); sweeps rank trials by it.
        """
        fake = self.sample()
        out: dict[str, float] = {}
        ecfg = self.cfg.eval
        if self.source.modes is not None and len(self.source.modes) > 1:  # mixtures
            st = mode_stats(
                fake, self.source.modes, self.source.sigma, ecfg.quality_sigmas, ecfg.cover_fraction
            )
            out["modes_covered"] = float(st.modes_covered)
            out["hq_fraction"] = st.hq_fraction
        if self.source.name == "digits":
            scorer = self.scorer()
            out["frechet_distance"] = scorer.frechet(fake)
            out["class_coverage"] = float(class_coverage(scorer.predict(fake), 10, ecfg.class_cover_fraction))
            out["eval_distance"] = out["frechet_distance"]
        else:
            out["energy_distance"] = energy_distance(fake[: len(self.eval_real)], self.eval_real)
            out["eval_distance"] = out["energy_distance"]
        if self.optimal is not None:
            out.update(self.optimal.metrics(self.discriminate))
        return out

    @torch.no_grad()
    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) = σ(logit) of the discriminator in eval mode, in fp32 (classic objectives)."""
        was_training = self.critic.training
        self.critic.eval()
        try:
            return torch.sigmoid(self.critic(x).float())
        finally:
            self.critic.train(was_training)

    def scorer(self) -> Any:
        if self._scorer is None:
            from components.gan.digits_classifier import DigitsScorer

            self._scorer = DigitsScorer(device=self.device)
        return self._scorer

    # -- state and artifacts ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, every tensor on the CPU (loadable on any device)."""
        return to_cpu(
            {
                "generator": self.generator.state_dict(),
                "critic": self.critic.state_dict(),
                **(
                    {"generator_ema": self.generator_ema.state_dict()}
                    if self.generator_ema is not None
                    else {}
                ),
                "opt_g": self.opt_g.state_dict() if self.opt_g is not None else {},
                "opt_d": self.opt_d.state_dict(),
                "rng": self.rng.get_state(),
                "rng_device": self.device.type,
                "position": self.position,
                "history": {k: [list(p) for p in v] for k, v in self.history.items()},
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` written on any device; tensors move to this trainer's device."""
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            if self.generator_ema is not None:
                self.generator_ema.load_state_dict(state.get("generator_ema", state["generator"]))
            if self.opt_g is not None:
                self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            for opt in (self.opt_g, self.opt_d):
                if opt is not None:  # this device's flags, step counters and memory layouts
                    restore_optimizer(opt)
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConfigError(
                f"GAN checkpoint does not fit this config's networks ({type(e).__name__}: {e})"
            ) from e
        if state.get("rng_device", "cpu") == self.device.type:
            self.rng.set_state(state["rng"])
        else:  # another kind of device, another generator algorithm: a fresh, reproducible stream
            self.rng.manual_seed(self.cfg.seed * 1_000_003 + int(state["position"]) + 1)
        self.position = int(state["position"])
        self.history = {k: [list(map(float, p)) for p in v] for k, v in state.get("history", {}).items()}

    def describe(self) -> dict[str, str]:
        return {**describe_device(self.device), "precision": self.cfg.train.precision}

    def datasets(self) -> list[DataCard]:
        return [self.data_card]

    def models(self) -> dict[str, tuple[Any, np.ndarray]]:
        """The generator the metrics describe (the weight average, if any), with latent codes as its
        input example; none for a fixed generator (it has nothing learned)."""
        if self.fixed_generator:
            return {}
        g = self.generator_ema if self.generator_ema is not None else self.generator
        return {"generator": (g, self.eval_z[:4].detach().cpu().numpy())}

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """``samples.png`` (or ``discriminator.png`` for a fixed generator) and ``generator.pt`` at every
        call; learning curves and samples.pt when final."""
        from components.gan import plots

        out_dir.mkdir(parents=True, exist_ok=True)
        title = f"{self.source.name} · {self.loss} · step {self.position}"
        fake = self.sample()
        if self.optimal is not None:
            paths = [self.optimal.plot(self.discriminate, out_dir / "discriminator.png", title)]
        elif self.source.is_image:
            paths = [plots.plot_image_grid(fake[:64], out_dir / "samples.png", title)]
        elif self.source.sample_shape == (2,):
            radius = self.cfg.eval.quality_sigmas * self.source.sigma
            paths = [
                plots.plot_points(
                    fake, self.eval_real, out_dir / "samples.png", title, self.source.modes, radius
                )
            ]
        else:
            paths = []
        g_path = out_dir / "generator.pt"
        best = self.generator_ema if self.generator_ema is not None else self.generator
        torch.save(to_cpu(best.state_dict()), g_path)  # the generator the metrics describe
        paths.append(g_path)
        if final:
            paths.append(plots.plot_curves(self.history, CURVE_KEYS, out_dir / "curves.png", title))
            torch.save(fake.float().cpu().contiguous(), out_dir / "samples.pt")
            paths.append(out_dir / "samples.pt")
        return paths
