"""The trainer: one-step behaviour, checkpoints, artifacts, and seeded quality within fixed budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from components.config import ConfigError, build
from components.gan.config import GanConfig
from components.gan.trainer import GanTrainer


def make(**sections: dict) -> GanTrainer:
    train = {"threads": 1, "device": "cpu", **sections.pop("train", {})}
    return GanTrainer(build(GanConfig, {**sections, "train": train}))


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wgan", "wgan_gp"])
def test_one_chunk_reports_the_objectives_metrics(loss: str) -> None:
    t = make(train={"loss": loss, "steps": 4, "batch_size": 32}, report_every=2, eval={"samples": 100})
    m = t.run_chunk()
    assert t.position == 2
    assert {"d_loss", "g_loss", "modes_covered", "hq_fraction", "eval_distance", "best_eval_distance"} <= set(
        m
    )
    assert {"raw_eval_distance", "raw_modes_covered", "raw_hq_fraction", "wall_s"} <= set(m)
    assert "energy_distance" not in m  # eval_distance is the energy distance here: one series, not two
    if loss.startswith("wgan"):
        assert "wasserstein_estimate" in m and "minimax_value" not in m
        assert ("gradient_penalty" in m) == (loss == "wgan_gp")
    else:
        assert m["minimax_value"] == pytest.approx(-m["d_loss"])
    if loss == "wgan":  # clipped after every critic step
        assert max(p.abs().max().item() for p in t.critic.parameters()) <= 0.01 + 1e-7


def test_critic_step_moves_only_the_critic_and_generator_step_only_the_generator() -> None:
    t = make(train={"loss": "nonsaturating", "batch_size": 16})
    g0 = [p.detach().clone() for p in t.generator.parameters()]
    d0 = [p.detach().clone() for p in t.critic.parameters()]
    t.critic_step()
    assert all(torch.equal(a, b) for a, b in zip(g0, t.generator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, t.critic.parameters()))
    d1 = [p.detach().clone() for p in t.critic.parameters()]
    t.generator_step()
    assert all(torch.equal(a, b) for a, b in zip(d1, t.critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g0, t.generator.parameters()))


def test_paper_defaults_resolve() -> None:
    wgan = build(GanConfig, {"train": {"loss": "wgan"}})
    assert (wgan.optimizer, wgan.lr_g, wgan.n_critic, wgan.train.clip) == ("rmsprop", 5e-5, 5, 0.01)
    gp = build(GanConfig, {"train": {"loss": "wgan_gp"}})
    assert (gp.optimizer, gp.lr_g, gp.betas, gp.n_critic, gp.train.gp_weight) == (
        "adam",
        1e-4,
        (0.0, 0.9),
        5,
        10,
    )
    ns = build(GanConfig, {"train": {"loss": "nonsaturating"}})
    assert (ns.n_critic, ns.betas) == (1, (0.5, 0.999))
    with pytest.raises(ConfigError, match="'batch' is not allowed with train.loss 'wgan_gp'"):
        build(GanConfig, {"train": {"loss": "wgan_gp"}, "model": {"d_norm": "batch"}})
    with pytest.raises(ConfigError, match="unknown key 'train.los'"):
        build(GanConfig, {"train": {"los": "wgan"}})


def test_checkpoint_roundtrip_continues_the_same_run(tmp_path: Path) -> None:
    cfg = {
        "train": {"loss": "wgan_gp", "steps": 6, "batch_size": 16},
        "report_every": 3,
        "eval": {"samples": 50},
    }
    straight = make(**cfg)
    straight.run_chunk()
    straight.run_chunk()
    first = make(**cfg)
    first.run_chunk()
    torch.save(first.state_dict(), tmp_path / "c.pt")
    resumed = make(**cfg)
    resumed.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True))
    resumed.run_chunk()
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert resumed.history["d_loss"][0] == straight.history["d_loss"][0]
    other = make(model={"hidden": 8}, **cfg)
    with pytest.raises(ConfigError, match="does not fit"):
        other.load_state_dict(first.state_dict())


def test_artifacts_for_points_and_digits(tmp_path: Path) -> None:
    t = make(train={"steps": 1, "batch_size": 16}, eval={"samples": 50})
    t.run_chunk()
    names = {p.name for p in t.write_artifacts(tmp_path / "a", final=True)}
    assert names == {
        "samples.png",
        "generator.pt",
        "curves.png",
        "samples.pt",
        "best_generator.pt",
        "best_generator.json",
    }
    d = make(
        data={"kind": "digits"},
        model={"z_dim": 8, "hidden": 8},
        train={"steps": 1, "batch_size": 8},
        eval={"samples": 50},
    )
    paths = d.write_artifacts(tmp_path / "b", final=False)
    assert {p.name for p in paths} == {"samples.png", "generator.pt"}
    g = d.generator
    g.load_state_dict(torch.load(tmp_path / "b" / "generator.pt", weights_only=True))


# -- seeded quality within fixed budgets ------------------------------------------------------


CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "gan"


def test_ring8_gan_ns_trains_its_discriminator_at_twice_the_generators_rate() -> None:
    """train.lr_d, as the shipped ring8_gan_ns sets it: Adam's first step moves every weight by about
    its rate (|m̂/√v̂| = 1), so the discriminator's largest move is 2e-3 and the generator's 1e-3."""
    from components.config import load

    t = GanTrainer(load(GanConfig, CONFIGS / "ring8_gan_ns.yaml", ["train.threads=1", "train.device=cpu"]))
    assert (t.cfg.lr_g, t.cfg.lr_d) == (1e-3, 2e-3)
    for step, net, lr in ((t.critic_step, t.critic, 2e-3), (t.generator_step, t.generator, 1e-3)):
        before = [p.detach().clone() for p in net.parameters()]
        step()
        moved = max((p - b).abs().max().item() for p, b in zip(net.parameters(), before))
        assert moved == pytest.approx(lr, rel=1e-3)


def test_ring8_wgan_clips_its_critic_at_a_tenth() -> None:
    """train.clip 0.1 in the shipped ring8_wgan: after a critic step every weight lies in [−0.1, 0.1]
    and the first layer's (initialised up to ±1/√2) sit on the bound."""
    from components.config import load

    t = GanTrainer(load(GanConfig, CONFIGS / "ring8_wgan.yaml", ["train.threads=1", "train.device=cpu"]))
    assert (t.cfg.train.clip, t.cfg.lr_d, t.cfg.optimizer, t.cfg.train.steps) == (0.1, 1e-3, "rmsprop", 10000)
    t.critic_step()
    assert max(p.abs().max().item() for p in t.critic.parameters()) == pytest.approx(0.1)


@pytest.mark.slow
def test_nonsaturating_gan_covers_ring8_with_high_quality() -> None:
    t = GanTrainer(
        build(
            GanConfig,
            {
                "seed": 0,
                "data": {"kind": "ring8"},
                "report_every": 4000,
                "train": {
                    "loss": "nonsaturating",
                    "steps": 4000,
                    "lr": 1e-3,
                    "batch_size": 256,
                    "threads": 1,
                },
            },
        )
    )
    m = t.run_chunk()
    assert m["modes_covered"] == 8
    assert m["hq_fraction"] >= 0.8


@pytest.mark.slow
def test_wgan_gp_approaches_ring8_and_its_wasserstein_curve_falls() -> None:
    # λ = 0.1, as the WGAN-GP authors' toy experiments (gan_toy.py: "smaller lambda seems to help for
    # toy tasks"), lr 1e-3. Measured on seeds 0–2 (docs/gan.md): energy distance 0.009–0.037 from step
    # 500 on, the critic's estimate falling 1.3 → 0.46 → 0.25, 6–8 modes at the best report. Which modes
    # are covered at one step hops (and differs between CPUs): the assertions keep a margin from it.
    t = GanTrainer(
        build(
            GanConfig,
            {
                "seed": 0,
                "data": {"kind": "ring8"},
                "report_every": 500,
                "train": {
                    "loss": "wgan_gp",
                    "steps": 1500,
                    "lr": 1e-3,
                    "gp_weight": 0.1,
                    "batch_size": 256,
                    "threads": 1,
                },
            },
        )
    )
    untrained = t.evaluate()["eval_distance"]
    reports = [t.run_chunk() for _ in range(3)]
    w = [r["wasserstein_estimate"] for r in reports]
    assert w[0] > w[1] > w[2] > 0  # the critic's W1 estimate falls as the generator closes in
    assert untrained > 0.3 and reports[-1]["eval_distance"] < 0.05  # 10× closer to the data
    best = max(reports, key=lambda r: (r["modes_covered"], r["hq_fraction"]))
    assert best["modes_covered"] >= 5 and best["hq_fraction"] >= 0.1  # modes, not a diffuse cloud


def digits_wgan_gp(conditional: bool = False) -> GanTrainer:
    """A DCGAN-shaped WGAN-GP on sklearn's digits: 300 steps of batch 64 at 5e-4, one report at the end."""
    return GanTrainer(
        build(
            GanConfig,
            {
                "seed": 0,
                "data": {"kind": "digits"},
                "report_every": 300,
                "eval": {"samples": 1000},
                "model": {
                    "arch": "dcgan",
                    "z_dim": 32,
                    "hidden": 16,
                    "conv_stages": 2,
                    "conditional": conditional,
                },
                "train": {"loss": "wgan_gp", "steps": 300, "lr": 5e-4, "batch_size": 64, "threads": 1},
            },
        )
    )


@pytest.mark.slow
def test_wgan_gp_on_digits_gets_within_a_tenth_of_the_noise_distance() -> None:
    t = digits_wgan_gp()
    g = torch.Generator().manual_seed(0)
    noise_fd = t.scorer().frechet(torch.rand(1000, 1, 8, 8, generator=g) * 2 - 1)
    assert noise_fd > 100  # uniform noise is far from digits in the classifier's feature space
    m = t.run_chunk()
    assert m["eval_distance"] < noise_fd / 10
    assert m["class_coverage"] == 10


@pytest.mark.slow
def test_a_conditional_wgan_gp_on_digits_draws_the_class_it_is_asked_for() -> None:
    """model.conditional: the generator is given classes 0, 1, …, 9 in turn at evaluation; after 300
    steps the classifier names the asked class for most samples (0.83 measured; chance is 0.1), every
    class is drawn, and class_accuracy is exactly the share of samples the classifier labels as asked."""
    t = digits_wgan_gp(conditional=True)
    assert t.classes == 10
    m = t.run_chunk()
    predicted = t.scorer().predict(t.sample())
    asked = torch.arange(1000) % 10
    assert m["class_accuracy"] == pytest.approx(float((predicted == asked).double().mean()), abs=1e-12)
    assert m["class_accuracy"] >= 0.7 and m["class_coverage"] == 10
    assert torch.bincount(predicted, minlength=10).min() >= 50  # 66 measured; a uniform share is 100
