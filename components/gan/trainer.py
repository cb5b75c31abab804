"""The GAN trainer: n_critic discriminator/critic steps per generator step, scored at each report.

One class runs all four objectives, because they differ only in the loss functions and in what
happens after a critic step (weight clipping for WGAN); mimicry does the same. It follows adl's
trainer protocol, so ``adl train gan`` drives it with the local runner and ``adl sweep`` drives the
very same object inside Tune trials.

Randomness: network initialisation uses ``seed`` inside a forked global RNG (nothing leaks to the
caller); data, latent noise and interpolation weights come from one ``torch.Generator`` that is
checkpointed, so a resumed run continues the same stream. Evaluation uses a fixed latent batch, so
the reported curves move only because the generator does.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from components.config import ConfigError
from components.gan import losses
from components.gan.config import GanConfig
from components.gan.data import DataSource, make_source
from components.gan.metrics import class_coverage, energy_distance, mode_stats
from components.gan.nets import build_networks

CURVE_KEYS = ("d_loss", "g_loss", "wasserstein_estimate", "minimax_value", "eval_distance", "hq_fraction")


class GanTrainer:
    """Trains one generator against one discriminator/critic; ``position`` counts generator steps."""

    unit = "step"

    def __init__(self, cfg: GanConfig, source: DataSource | None = None) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.source = source or make_source(cfg.data)
        self.loss = cfg.train.loss
        self.wgan = self.loss in ("wgan", "wgan_gp")
        m = cfg.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.generator, self.critic = build_networks(
                m.arch,
                self.source.sample_shape,
                m.z_dim,
                m.hidden,
                m.layers,
                m.conv_stages,
                m.g_norm,
                m.d_norm,
                self.loss,
            )
        # Weight averaging damps the mode hopping of GAN training (Yazıcı et al. 2019); the average is
        # only read (evaluation, samples, generator.pt), never trained.
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if cfg.train.ema else None
        self.opt_g, self.opt_d = (
            self._optimizer(self.generator, cfg.lr_g),
            self._optimizer(self.critic, cfg.lr_d),
        )
        self.rng = torch.Generator().manual_seed(cfg.seed)
        eval_rng = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        self.eval_z = torch.randn(cfg.eval.samples, m.z_dim, generator=eval_rng)
        self.eval_real = self.source.sample(min(cfg.eval.samples, 2000), eval_rng)
        self.position = 0
        self.total = cfg.train.steps
        self.history: dict[str, list[list[float]]] = {}
        self._scorer: Any = None

    def _optimizer(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.cfg.optimizer == "rmsprop":
            return torch.optim.RMSprop(net.parameters(), lr=lr)
        return torch.optim.Adam(net.parameters(), lr=lr, betas=self.cfg.betas)

    # -- one step each ------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.z_dim, generator=self.rng)

    def critic_step(self) -> dict[str, torch.Tensor]:
        """One discriminator/critic update on a fresh real batch and a batch of (fixed) fakes."""
        b = self.cfg.train.batch_size
        real = self.source.sample(b, self.rng)
        with torch.no_grad():
            fake = self.generator(self._noise(b))
        real_s, fake_s = self.critic(real), self.critic(fake)
        stats: dict[str, torch.Tensor] = {}
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
            stats["d_real"] = torch.sigmoid(real_s).mean()
            stats["d_fake"] = torch.sigmoid(fake_s).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        if self.loss == "wgan":
            losses.clip_weights_(self.critic, self.cfg.train.clip)
        stats["d_loss"] = loss
        return stats

    def generator_step(self) -> torch.Tensor:
        """One generator update against the current discriminator/critic; returns the G loss."""
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
        """``report_every`` generator steps (fewer at the end), then score samples; returns metrics."""
        n = min(self.cfg.report_every, self.total - self.position)
        sums: dict[str, torch.Tensor] = {}
        n_critic = self.cfg.n_critic
        t0 = time.perf_counter()
        for _ in range(n):
            for _ in range(n_critic):
                for k, v in self.critic_step().items():
                    sums[k] = sums[k] + v.detach() if k in sums else v.detach()
            g = self.generator_step().detach()
            sums["g_loss"] = sums["g_loss"] + g if "g_loss" in sums else g
            self.position += 1
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
        if self.source.modes is not None:
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
        return out

    def scorer(self) -> Any:
        if self._scorer is None:
            from components.gan.digits_classifier import DigitsScorer

            self._scorer = DigitsScorer()
        return self._scorer

    # -- state and artifacts ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            **({"generator_ema": self.generator_ema.state_dict()} if self.generator_ema is not None else {}),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "position": self.position,
            "history": {k: [list(p) for p in v] for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            if self.generator_ema is not None:
                self.generator_ema.load_state_dict(state.get("generator_ema", state["generator"]))
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConfigError(
                f"GAN checkpoint does not fit this config's networks ({type(e).__name__}: {e})"
            ) from e
        self.rng.set_state(state["rng"])
        self.position = int(state["position"])
        self.history = {k: [list(map(float, p)) for p in v] for k, v in state.get("history", {}).items()}

    def write_artifacts(self, out_dir: Path, final: bool = True) -> list[Path]:
        """``samples.png`` and ``generator.pt`` at every call; learning curves and samples.pt when final."""
        from components.gan import plots

        out_dir.mkdir(parents=True, exist_ok=True)
        title = f"{self.source.name} · {self.loss} · step {self.position}"
        fake = self.sample()
        if self.source.is_image:
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
        torch.save(best.state_dict(), g_path)  # the generator the metrics describe
        paths.append(g_path)
        if final:
            paths.append(plots.plot_curves(self.history, CURVE_KEYS, out_dir / "curves.png", title))
            torch.save(fake, out_dir / "samples.pt")
            paths.append(out_dir / "samples.pt")
        return paths
