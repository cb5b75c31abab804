"""``adl sweep`` of the GAN family on real Ray Tune: one parent MLflow run, one child run per trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ray
def test_two_trial_gan_sweep_writes_parent_and_children(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)  # history for the summary
    shipped = yaml.safe_load((REPO / "configs/sweeps/gan_ring8.yaml").read_text())
    sweep = {
        **shipped,
        "base_config": str(REPO / shipped["base_config"]),
        "overrides": {
            "train.steps": 40,
            "report_every": 20,
            "eval.samples": 300,
            "train.batch_size": 64,
        },
        "search_space": {"train.loss": {"grid": ["nonsaturating", "wgan_gp"]}},
        "scheduler": {"kind": "fifo"},
        "storage_path": str(tmp_path / "tune"),
        "overhead": 1000,  # pictures and a checkpoint at every report, whatever they cost
    }
    path = tmp_path / "gan_tiny.yaml"
    path.write_text(yaml.safe_dump(sweep))
    code = main(
        [
            "sweep",
            "--config",
            str(path),
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            "gan-sweep",
            "--num-cpus",
            "2",
        ]
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("gan-sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("adl.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(c.data.params["train.loss"] for c in children) == ["nonsaturating", "wgan_gp"]
    for child in children:
        assert child.info.status == "FINISHED"
        # Where it trained, resolved: a gpu: 0 trial on the CPU, with the threads of its CPUs.
        assert child.data.params["device"] == "cpu" and child.data.params["precision"] == "fp32"
        assert child.data.params["train.threads"] == str(int(shipped["resources"]["cpu"]))
        assert [m.step for m in client.get_metric_history(child.info.run_id, "eval/distance")] == [20, 40]
        top = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"samples.png", "generator.pt"} <= top
        reports = {a.path for a in client.list_artifacts(child.info.run_id, "reports/step_00000020")}
        assert "reports/step_00000020/samples.png" in reports
    # Both trials trained on the same data: one dataset, one digest, in the Datasets column.
    datasets = {(d.dataset.name, d.dataset.digest) for c in children for d in c.inputs.dataset_inputs}
    assert len(datasets) == 1 and next(iter(datasets))[0] == "ring8"
    assert parent.info.status == "FINISHED"
    best = parent.data.tags["adl.best_run_id"]
    assert best in {c.info.run_id for c in children}
    best_child = next(c for c in children if c.info.run_id == best)
    assert float(parent.data.tags["adl.best_eval_distance"]) == pytest.approx(
        min(c.data.metrics["eval/distance"] for c in children)
    )
    assert best_child.data.metrics["eval/distance"] == pytest.approx(
        float(parent.data.tags["adl.best_eval_distance"])
    )
    assert {"sweep_summary.json", "sweep_curves.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
