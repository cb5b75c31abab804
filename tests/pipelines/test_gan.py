"""``adl train gan`` end to end on a real MLflow store, and the family's sweep summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

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
    assert {"digits_dcgan", "digits_wgan_gp"} <= names
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
    assert generator.keys() == state["generator"].keys()
    assert all(torch.equal(generator[k], state["generator"][k]) for k in generator)


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
