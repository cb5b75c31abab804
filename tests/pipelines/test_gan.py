"""``adl train gan`` end to end on a real MLflow store, and the family's sweep summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.config import load
from components.gan.config import GanConfig
from components.gan.trainer import GanTrainer
from pipelines.cli.main import main
from pipelines.families import CONFIGS_DIR, get_family

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_gan_config_builds_a_trainer(tmp_path: Path) -> None:
    from PIL import Image

    from components.config import ConfigError, load

    image_folder = tmp_path / "images"
    image_folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 36), (60 * i, 90, 200)).save(image_folder / f"{i}.png")

    family = get_family("gan")
    paths = sorted((CONFIGS_DIR / "gan").glob("*.yaml"))
    names = {p.stem for p in paths}
    for ds in ("ring8", "grid25"):
        assert {f"{ds}_gan_minimax", f"{ds}_gan_ns", f"{ds}_wgan", f"{ds}_wgan_gp"} <= names
    assert {"digits_dcgan", "digits_wgan_gp", "mnist_dcgan", "mnist_wgan_gp"} <= names
    for p in paths:
        cfg = load(family.config_cls, p)
        if cfg.data.kind == "images":  # ships a placeholder folder: refused, then run on real images
            with pytest.raises(ConfigError, match="data.path: folder not found"):
                family.build(cfg)  # type: ignore[misc]
            cfg = load(family.config_cls, p, [f"data.path={image_folder}"])
        trainer = family.build(cfg)  # type: ignore[misc]
        assert trainer.total == cfg.train.steps


def test_adl_train_gan_logs_metrics_samples_and_a_loadable_checkpoint(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "train",
            "gan",
            "--config",
            str(REPO / "configs/gan/ring8_wgan_gp.yaml"),
            "--no-progress",
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            "gan-e2e",
            "--set",
            "train.steps=20",
            "--set",
            "report_every=10",
            "--set",
            "train.threads=1",
            "--set",
            "eval.samples=200",
        ]
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gan-e2e").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.loss"] == "wgan_gp" and run.data.params["train.steps"] == "20"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "gan/wasserstein_estimate")] == [
        10,
        20,
    ]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/distance")] == [10, 20]
    # The energy distance is eval/distance, once: no second series of the same numbers.
    assert "eval/energy_distance" not in run.data.metrics and run.data.params["eval_distance"] == "energy"
    # The live generator is scored beside its weight average; the best of both is kept.
    assert {"gan/raw_eval_distance", "gan/best_eval_distance", "perf/wall_s"} <= set(run.data.metrics)
    # The Datasets column: the mixture, hashed by its recipe, as the training input.
    (data,) = run.inputs.dataset_inputs
    assert (data.dataset.name, data.dataset.source_type) == ("ring8", "code")
    assert {t.key: t.value for t in data.tags} == {"mlflow.data.context": "training"}
    assert json.loads(data.dataset.profile)["features_shape"] == [-1, 2]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.png", "curves.png", "generator.pt", "checkpoint.pt", "config.yaml"} <= arts
    ckpt = client.download_artifacts(run.info.run_id, "checkpoint.pt", str(tmp_path))
    state = torch.load(ckpt, weights_only=True)
    assert state["position"] == 20 and {"critic", "opt_g", "opt_d", "rng"} <= set(state)
    g_path = client.download_artifacts(run.info.run_id, "generator.pt", str(tmp_path))
    generator = torch.load(g_path, weights_only=True)
    # generator.pt is the weight average the metrics describe, as the checkpoint holds it.
    assert generator.keys() == state["average"]["model"].keys() == state["generator"].keys()
    assert all(torch.equal(generator[k], state["average"]["model"][k]) for k in generator)
    assert (
        state["average"]["updates"] == 20
        and state["best"]["value"] == run.data.metrics["gan/best_eval_distance"]
    )
    # The logged best generator, scored again from the file, gives the logged best metric.
    best_path = client.download_artifacts(run.info.run_id, "best_generator.pt", str(tmp_path))
    cfg = load(GanConfig, REPO / "configs/gan/ring8_wgan_gp.yaml", ["train.threads=1", "eval.samples=200"])
    fresh = GanTrainer(cfg)
    fresh.generator.load_state_dict(torch.load(best_path, weights_only=True))
    assert fresh.evaluate(fresh.generator)["eval_distance"] == pytest.approx(
        run.data.metrics["gan/best_eval_distance"], rel=1e-12
    )
    info = json.loads(
        Path(client.download_artifacts(run.info.run_id, "best_generator.json", str(tmp_path))).read_text()
    )
    assert info["step"] in (10, 20) and info["eval_distance"] == state["best"]["value"]
    # Both generators are MLflow models; the generator takes any number of latents (its input example
    # has 4), and draws what generator.pt draws.
    models = {m.name: m for m in client.search_logged_models([run.info.experiment_id])}
    assert set(models) == {"generator", "best_generator"}
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pyfunc.load_model(models["generator"].model_uri)
    z = torch.randn(10, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    fresh.generator.load_state_dict(generator)
    with torch.no_grad():
        expected = fresh.generator.eval()(z).numpy()
    np.testing.assert_allclose(np.asarray(served.predict(z.numpy())), expected, rtol=1e-5, atol=1e-6)


def test_bad_gan_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "gan",
            "--set",
            "data.kind=file",
            "--set",
            f"data.path={tmp_path / 'nope.npy'}",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ]
    )
    assert code == 2
    assert "data.path: file not found" in capsys.readouterr().err
    code = main(["train", "gan", "--set", "train.loss=wgan_pg"])
    assert code == 2
    assert "did you mean 'wgan_gp'" in capsys.readouterr().err


def test_summarize_sweep_ranks_trials_and_draws_their_curves(tmp_path: Path) -> None:
    family = get_family("gan")
    results = [
        {
            "config": {"train.lr": 1e-3},
            "metrics": {"eval_distance": 0.5},
            "run_id": "a",
            "history": [{"position": 10, "eval_distance": 0.9}, {"position": 20, "eval_distance": 0.5}],
        },
        {
            "config": {"train.lr": 1e-4},
            "metrics": {"eval_distance": 0.1, "modes_covered": 8.0},
            "run_id": "b",
            "history": [{"position": 10, "eval_distance": 0.3}, {"position": 20, "eval_distance": 0.1}],
        },
    ]
    assert family.summarize_sweep is not None
    paths = family.summarize_sweep(results, tmp_path)
    assert {p.name for p in paths} == {"sweep_summary.json", "sweep_curves.png"}
    rows = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert [r["run_id"] for r in rows] == ["b", "a"] and rows[0]["modes_covered"] == 8.0


def test_summarize_sweep_draws_against_wall_seconds_when_trials_report_them(tmp_path: Path) -> None:
    from PIL import Image

    family = get_family("gan")
    assert family.summarize_sweep is not None
    trial = {
        "config": {"train.loss": "wgan_gp"},
        "metrics": {"eval_distance": 9.0, "best_eval_distance": 8.0, "wall_s": 40.0, "class_coverage": 10.0},
        "run_id": "c",
        "history": [
            {"position": 100, "eval_distance": 30.0, "wall_s": 20.0},
            {"position": 200, "eval_distance": 9.0, "wall_s": 40.0},
        ],
    }
    family.summarize_sweep([trial], tmp_path / "timed")
    (row,) = json.loads((tmp_path / "timed" / "sweep_summary.json").read_text())
    assert row["best_eval_distance"] == 8.0 and row["wall_s"] == 40.0 and row["class_coverage"] == 10.0
    untimed = {**trial, "history": [{k: v for k, v in h.items() if k != "wall_s"} for h in trial["history"]]}
    family.summarize_sweep([untimed], tmp_path / "untimed")
    # Two panels (against steps and wall seconds) are drawn side by side: a figure 12 inches wide, not 7.
    widths = [Image.open(tmp_path / d / "sweep_curves.png").size[0] for d in ("timed", "untimed")]
    assert widths == [1200, 700]


def test_the_mnist_sweep_crosses_dcgan_and_wgan_gp_and_every_trial_builds() -> None:
    """Every trial of configs/sweeps/gan_mnist.yaml is a valid config that builds a trainer, with the
    loss's own defaults for the keys the two GANs do not share, and runs (two generator steps here)."""
    import itertools

    from components.config import apply_values, build
    from pipelines.sweep.plan import load_sweep

    sweep, base = load_sweep(REPO / "configs/sweeps/gan_mnist.yaml")
    assert sweep.max_concurrent == 2 and sweep.scheduler.kind == "fifo"
    grids = {k: v["grid"] for k, v in sweep.search_space.items()}
    assert grids == {"train.loss": ["nonsaturating", "wgan_gp"], "seed": [0, 1]}
    family = get_family("gan")
    seen = {}
    for loss, seed in itertools.product(*grids.values()):
        cfg = build(GanConfig, apply_values(base, {"train.loss": loss, "seed": seed}))
        trainer = family.build(cfg)  # type: ignore[misc]
        norms = {type(m).__name__ for m in trainer.critic.modules()}
        seen[loss] = (cfg.n_critic, cfg.betas, "BatchNorm2d" in norms, "GroupNorm" in norms)
        assert cfg.data.kind == "mnist" and trainer.source.sample_shape == (1, 28, 28)
        assert (cfg.train.steps, cfg.report_every) == (1200, 100)
        short = {"train.loss": loss, "seed": seed, "train.steps": 2, "report_every": 2, "eval.samples": 100}
        metrics = family.build(build(GanConfig, apply_values(base, short))).run_chunk()  # type: ignore[attr-defined]
        assert metrics["eval_distance"] > 0 and ("gradient_penalty" in metrics) == (loss == "wgan_gp")
    assert seen == {"nonsaturating": (1, (0.5, 0.999), True, False), "wgan_gp": (5, (0.0, 0.9), False, True)}


@pytest.mark.parametrize(
    "name, loss, steps, critic_norm",
    [
        ("mnist_dcgan", "nonsaturating", 6000, "BatchNorm2d"),
        ("mnist_wgan_gp", "wgan_gp", 1200, "GroupNorm"),
        ("mnist_dcgan_conditional", "nonsaturating", 12000, "BatchNorm2d"),
    ],
)
def test_the_shipped_mnist_configs_train_on_the_training_split_and_score_against_the_held_out_digits(
    name: str, loss: str, steps: int, critic_norm: str
) -> None:
    """configs/gan/mnist_*.yaml as docs/gan.md describes them, run for two generator steps: z of 64
    projected to [64, 7, 7], doubled to [32, 14, 14] and [1, 28, 28]; the Fréchet distance of 1,000
    samples in the MNIST classifier's features, far above the held-out digits' own."""
    family = get_family("gan")
    cfg = load(GanConfig, REPO / f"configs/gan/{name}.yaml")
    assert (cfg.train.loss, cfg.train.steps, cfg.train.batch_size, cfg.eval.samples) == (
        loss,
        steps,
        64,
        1000,
    )
    short = load(
        GanConfig, REPO / f"configs/gan/{name}.yaml", ["train.steps=2", "report_every=2", "eval.samples=100"]
    )
    trainer = family.build(short)  # type: ignore[misc]
    assert isinstance(trainer, GanTrainer) and trainer.source.sample_shape == (1, 28, 28)
    ups = [m for m in trainer.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert (trainer.generator.c0, trainer.generator.h0) == (64, 7) and [m.out_channels for m in ups] == [
        32,
        1,
    ]
    assert critic_norm in {type(m).__name__ for m in trainer.critic.modules()}
    metrics = trainer.run_chunk()
    where = trainer.describe()
    assert where["eval_distance"] == "frechet (mnist classifier features)"
    heldout = float(where["heldout_frechet"])
    assert 1.0 < heldout < 3.0 and metrics["eval_distance"] > 10 * heldout
    # class_coverage: classes predicted for ≥ eval.class_cover_fraction (0.1) of a uniform share (10 of 100)
    predicted = trainer.scorer().predict(trainer.sample())
    assert short.eval.class_cover_fraction == 0.1 and trainer.position == 2
    assert metrics["class_coverage"] == int((torch.bincount(predicted, minlength=10) >= 1).sum())
    # the conditional config: one-hot classes into G, a projection D, asked classes scored
    conditional = name.endswith("conditional")
    assert cfg.model.conditional == conditional and trainer.classes == (10 if conditional else 0)
    assert ("class_accuracy" in metrics) == conditional
    if conditional:
        assert (cfg.train.lr, cfg.train.threads) == (8e-4, 2)
        assert trainer.generator.project.in_features == 64 + 10 and trainer.critic.embed.num_embeddings == 10


def test_the_ring8_sweep_sets_one_learning_rate_for_both_networks() -> None:
    """configs/sweeps/gan_ring8.yaml starts from ring8_gan_ns (discriminator at 2e-3) but sweeps one
    train.lr: its trials train both networks at the sampled rate."""
    from components.config import apply_values, build
    from pipelines.sweep.plan import load_sweep

    _, base = load_sweep(REPO / "configs/sweeps/gan_ring8.yaml")
    assert load(GanConfig, REPO / "configs/gan/ring8_gan_ns.yaml").lr_d == 2e-3
    for loss in ("nonsaturating", "wgan_gp"):
        cfg = build(GanConfig, apply_values(base, {"train.loss": loss, "train.lr": 5e-4, "seed": 0}))
        assert (cfg.lr_g, cfg.lr_d) == (5e-4, 5e-4)
