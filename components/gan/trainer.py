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

Which generator: with ``train.ema_half_life`` > 0 (the default) the trainer keeps a moving average of
the generator's weights (:mod:`components.gan.ema`). The average is what the run delivers: the plain
metric names (``eval_distance``, ``modes_covered``, …), ``samples.png``, ``generator.pt`` and the
``generator`` model describe it, and the live generator is scored beside it as ``raw_*``. Both are
offered at every report to :class:`~components.gan.best.BestGenerator`, which keeps the lowest
``eval_distance`` seen (``best_eval_distance``; ``best_generator.pt`` and the ``best_generator`` model).

Conditional (``model.conditional``, labelled digits and MNIST): a discriminator step draws real rows with
their labels and fakes of the same classes, both scored as those classes; a generator step draws classes
in the data's proportions. Everything scored or drawn asks for the classes in turn (0, 1, …, K−1, 0, …),
so 1,000 evaluation samples hold 100 of each, and ``class_accuracy`` is the share the classifier labels
as asked.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import ConfigError
from components.data_card import DataCard
from components.device import (
    Placement,
    make_optimizer,
    prefers_channels_last,
    resolve_placement,
    restore_optimizer,
    synchronize,
    to_cpu,
)
from components.gan import losses
from components.gan.best import BestGenerator
from components.gan.config import GanConfig
from components.gan.data import DataSource, data_card, make_source
from components.gan.digits_classifier import scorer_for
from components.gan.ema import WeightAverage, target_decay
from components.gan.metrics import class_coverage, energy_distance, mode_stats
from components.gan.nets import build_networks, default_labels
from components.gan.optimal import NormalPair, OptimalCheck

# The panels of curves.png: each a list of metrics drawn together (the first names the panel).
CURVE_PANELS = (
    ("d_loss", "g_loss"),
    ("wasserstein_estimate",),
    ("minimax_value",),
    ("d_star_error",),
    ("eval_distance", "raw_eval_distance", "best_eval_distance"),
    ("hq_fraction", "raw_hq_fraction"),
    ("class_coverage", "raw_class_coverage"),
    ("class_accuracy", "raw_class_accuracy"),
)
# Scores of the live generator logged beside the average's, as raw_<name>.
RAW_KEYS = ("eval_distance", "modes_covered", "hq_fraction", "class_coverage", "class_accuracy")
REPORT_SAMPLES = 10  # images per report kept for samples_by_report.png
SCORED = ("digits", "mnist")  # datasets scored with a feature classifier (Fréchet distance)


class GanTrainer:
    """Trains one generator against one discriminator/critic; ``position`` counts generator steps.

    ``placement`` is where it trains: resolved from ``train`` once, here, unless the caller did.
    """

    unit = "step"

    def __init__(
        self, cfg: GanConfig, source: DataSource | None = None, placement: Placement | None = None
    ) -> None:
        self.cfg = cfg
        t, m = cfg.train, cfg.model
        self.placement = placement or resolve_placement(t)
        self.device = self.placement.device
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
                cpu_source.classes if m.conditional else 0,
            )
        self.classes = cpu_source.classes if m.conditional else 0
        self.channels_last = cpu_source.is_image and prefers_channels_last(self.device)
        for net in (self.generator, self.critic):
            net.to(self.device)
            if self.channels_last:  # 4-d weights only; torch's stubs omit this keyword
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # A fixed generator (model.generator: fixed_gaussian) has no parameters: only D is trained.
        self.fixed_generator = not any(True for _ in self.generator.parameters())
        # Weight averaging damps the mode hopping of GAN training (Yazıcı et al. 2019); the average is
        # only read (evaluation, samples, generator.pt), never trained. Its half-life is a share of the run.
        self.average = (
            WeightAverage(self.generator, target_decay(max(t.ema_half_life * t.steps, 1.0)))
            if t.ema_half_life > 0 and not self.fixed_generator
            else None
        )
        self.best = None if self.fixed_generator else BestGenerator()
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
        self.wall_s = 0.0  # training and evaluation so far, across resumes
        self.report_steps: list[int] = []  # images: the step of each row of report_samples
        self.report_samples: list[torch.Tensor] = []  # images: [REPORT_SAMPLES, C, H, W] uint8 per report
        self._scorer: Any = None

    def delivered(self) -> torch.nn.Module:
        """The generator the run's metrics, samples and ``generator`` model describe."""
        return self.generator if self.average is None else self.average.model

    def _optimizer(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "rmsprop":
            return make_optimizer("rmsprop", net.parameters(), self.device, lr=lr)
        return make_optimizer("adam", net.parameters(), self.device, lr=lr, betas=self.cfg.betas)

    def _autocast(self) -> Any:
        return self.placement.autocast()

    # -- one step each ------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.z_dim, generator=self.rng, device=self.device)

    def _generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.generator(z) if y is None else self.generator(z, y)

    def critic_step(self) -> dict[str, torch.Tensor]:
        """One discriminator/critic update on a fresh real batch and a batch of (fixed) fakes."""
        b = self.cfg.train.batch_size
        critic: Any = self.critic
        if self.classes:  # conditional: fakes of the real batch's classes, both scored as those classes
            real, y = self.source.sample_labelled(b, self.rng)
            critic = functools.partial(self.critic, y=y)
        else:
            real, y = self.source.sample(b, self.rng), None
        stats: dict[str, torch.Tensor] = {}
        with self._autocast():  # forward passes in bf16 if asked; losses reduce in fp32
            with torch.no_grad():
                fake = self._generate(self._noise(b), y)
            real_s, fake_s = critic(real), critic(fake)
            if self.wgan:
                w = losses.wasserstein_estimate(real_s, fake_s)
                loss = -w
                stats["wasserstein_estimate"] = w
                if self.loss == "wgan_gp":
                    gp = losses.gradient_penalty(critic, real, fake, generator=self.rng)
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
        b = self.cfg.train.batch_size
        with self._autocast():
            if self.classes:  # classes in the data's proportions
                y = self.source.sample_classes(b, self.rng)
                scores = self.critic(self.generator(self._noise(b), y), y)
            else:
                scores = self.critic(self.generator(self._noise(b)))
            if self.wgan:
                loss = losses.wasserstein_generator_loss(scores)
            elif self.loss == "minimax":
                loss = losses.saturating_generator_loss(scores)
            else:
                loss = losses.nonsaturating_generator_loss(scores)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.average is not None:
            self.average.update(self.generator)
        return loss

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
        metrics.update(self.report())
        self.wall_s += time.perf_counter() - t0
        metrics["wall_s"] = self.wall_s
        for k, value in metrics.items():
            self.history.setdefault(k, []).append([float(self.position), float(value)])
        return metrics

    def report(self) -> dict[str, float]:
        """Score the delivered generator (and the live one beside an average), offer both to the best
        snapshot, keep a row of report samples (images)."""
        out: dict[str, float] = {}
        if self.average is not None:
            self.average.refresh_norms(self.eval_z)  # batch-norm statistics of the averaged weights
        out.update(self.evaluate())
        if self.average is not None:
            raw = self.evaluate(self.generator)
            out.update({f"raw_{k}": raw[k] for k in RAW_KEYS if k in raw})
        if self.best is not None:
            if self.average is not None:
                self.best.offer(out["eval_distance"], self.position, "average", self.average.model)
                self.best.offer(out["raw_eval_distance"], self.position, "live", self.generator)
            else:
                self.best.offer(out["eval_distance"], self.position, "live", self.generator)
            out["best_eval_distance"] = self.best.value
        if self.source.is_image and not self.fixed_generator:
            rows = self.sample(self.eval_z[:REPORT_SAMPLES])
            pixels = ((rows.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            self.report_samples.append(pixels.cpu())
            self.report_steps.append(self.position)
        return out

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None, generator: torch.nn.Module | None = None) -> torch.Tensor:
        """Samples for ``z`` (default: the fixed evaluation batch) from ``generator`` (default: the
        delivered one, :meth:`delivered`), in eval mode."""
        g = self.delivered() if generator is None else generator
        was_training = g.training
        g.eval()
        try:
            return g(self.eval_z if z is None else z)
        finally:
            g.train(was_training)

    def evaluate(self, generator: torch.nn.Module | None = None) -> dict[str, float]:
        """Scores of ``generator``'s samples (default: the delivered one) on the fixed evaluation batch.

        Mixtures: modes covered, high-quality share. Digits and MNIST: classes covered. Every dataset:
        ``eval_distance``, the energy distance to real samples, or for digits and MNIST the Fréchet
        distance in the feature classifier's space (``describe()`` says which); sweeps rank trials by it.
        A fixed generator's run adds the discriminator's distance to D* (``d_star_error``, …).
        """
        fake = self.sample(generator=generator)
        out: dict[str, float] = {}
        ecfg = self.cfg.eval
        if self.source.modes is not None and len(self.source.modes) > 1:  # mixtures
            st = mode_stats(
                fake, self.source.modes, self.source.sigma, ecfg.quality_sigmas, ecfg.cover_fraction
            )
            out["modes_covered"] = float(st.modes_covered)
            out["hq_fraction"] = st.hq_fraction
        if self.source.name in SCORED:
            scorer = self.scorer()
            out["eval_distance"] = scorer.frechet(fake)
            predicted = scorer.predict(fake)
            out["class_coverage"] = float(class_coverage(predicted, 10, ecfg.class_cover_fraction))
            if self.classes:  # the samples were asked for classes 0, 1, …, K−1, 0, … in turn
                asked = default_labels(len(predicted), self.classes, predicted.device)
                out["class_accuracy"] = float((predicted == asked).double().mean())
        else:
            out["eval_distance"] = energy_distance(fake[: len(self.eval_real)], self.eval_real)
        if self.optimal is not None:  # a fixed generator: the discriminator against D*
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
        """The feature classifier's scorer of this dataset (digits, MNIST), trained on first use."""
        if self._scorer is None:
            self._scorer = scorer_for(self.source.name, self.device)
        return self._scorer

    def best_generator(self) -> torch.nn.Module | None:
        """A copy of the generator holding the best snapshot's weights (None before any report)."""
        if self.best is None or self.best.state is None:
            return None
        g = copy.deepcopy(self.generator).requires_grad_(False)
        g.load_state_dict(self.best.state)
        return g.eval()

    # -- state and artifacts ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, every tensor on the CPU (loadable on any device)."""
        return to_cpu(
            {
                "generator": self.generator.state_dict(),
                "critic": self.critic.state_dict(),
                **({"average": self.average.state_dict()} if self.average is not None else {}),
                **({"best": self.best.state_dict()} if self.best is not None else {}),
                "wall_s": self.wall_s,
                "report_steps": list(self.report_steps),
                "report_samples": (
                    torch.stack(self.report_samples)
                    if self.report_samples
                    else torch.zeros(0, dtype=torch.uint8, device="cpu")
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
            if self.average is not None:
                self.average.load_state_dict(
                    state.get("average", {"model": state["generator"], "updates": state["position"]})
                )
            if self.best is not None and "best" in state:
                best = state["best"]
                self.best.load_state_dict(
                    {**best, "state": {k: v.to(self.device) for k, v in best["state"].items()}}
                )
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
        self.wall_s = float(state.get("wall_s", 0.0))
        self.report_steps = [int(s) for s in state.get("report_steps", [])]
        samples = state.get("report_samples")
        self.report_samples = list(samples.unbind(0)) if samples is not None and len(samples) else []

    def describe(self) -> dict[str, str]:
        """Where it trains, and what ``eval_distance`` measures (with the classifier's yardsticks)."""
        out = self.placement.describe()
        if self.source.name in SCORED:
            scorer = self.scorer()
            out["eval_distance"] = f"frechet ({self.source.name} classifier features)"
            out["classifier_test_accuracy"] = f"{scorer.test_accuracy:.4f}"
            out["heldout_frechet"] = f"{scorer.heldout_frechet:.4g}"
        else:
            out["eval_distance"] = "energy"
        return out

    def datasets(self) -> list[DataCard]:
        return [self.data_card]

    def models(self) -> dict[str, tuple[Any, np.ndarray]]:
        """The generator the metrics describe (the weight average, if any) and the best one, with
        latent codes as their input example; none for a fixed generator (it has nothing learned)."""
        if self.fixed_generator:
            return {}
        example = self.eval_z[:4].detach().cpu().numpy()
        out = {"generator": (self.delivered(), example)}
        best = self.best_generator()
        if best is not None:
            out["best_generator"] = (best, example)
        return out

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """``samples.png`` (or ``discriminator.png`` for a fixed generator) and ``generator.pt`` (the
        delivered generator) at every call; when final also the learning curves, ``samples.pt``, the
        best generator (``best_generator.pt`` with ``best_generator.json``: its metric, step and
        source) and, for images, ``samples_by_report.png`` (a row of the same latents per report)."""
        from components.gan import plots  # matplotlib: ~0.5 s of import, only pictures need it

        out_dir.mkdir(parents=True, exist_ok=True)
        which = " · conditional" if self.classes else ""
        which += " · average" if self.average is not None else ""
        title = f"{self.source.name} · {self.loss} · step {self.position}{which}"
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
        torch.save(to_cpu(self.delivered().state_dict()), g_path)  # the generator the metrics describe
        paths.append(g_path)
        if final:
            paths.append(plots.plot_curves(self.history, CURVE_PANELS, out_dir / "curves.png", title))
            torch.save(fake.float().cpu().contiguous(), out_dir / "samples.pt")
            paths.append(out_dir / "samples.pt")
            if self.best is not None and self.best.state is not None:
                torch.save(to_cpu(self.best.state), out_dir / "best_generator.pt")
                info = {"eval_distance": self.best.value, "step": self.best.step, "source": self.best.source}
                (out_dir / "best_generator.json").write_text(json.dumps(info, indent=2))
                paths += [out_dir / "best_generator.pt", out_dir / "best_generator.json"]
            if self.report_samples:
                paths.append(
                    plots.plot_report_rows(
                        torch.stack(self.report_samples),
                        self.report_steps,
                        out_dir / "samples_by_report.png",
                        f"{self.source.name} · {self.loss}{which}: the same latents at each report",
                    )
                )
        return paths
