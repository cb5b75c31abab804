"""``adl sweep`` of the seq family on real Ray Tune: one LSTM and one GRU trial under one parent run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(REPO / "configs/sweeps/lstm_vs_gru.yaml")
TINY = (
    "overrides={train.steps: 40, train.report_every: 20, train.threads: 1, train.eval_chars: 4096, "
    "train.batch_size: 16, train.bptt: 32, data.max_chars: 60000, model.hidden_size: 32, "
    "model.num_layers: 1, sample.length: 40}"
)


@pytest.mark.slow
@pytest.mark.ray
def test_lstm_vs_gru_sweep_writes_parent_children_and_comparison(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Tune's result.json logger feeds the per-report history the comparison reads (best bpc, time to
    # target); tests/conftest.py switches Tune's auto loggers off, so switch them back on here.
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    code = main(
        [
            "sweep",
            "--config",
            SWEEP,
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            "seq-sweep",
            "--num-cpus",
            "2",
            "--set",
            "search_space={model.cell: {grid: [lstm, gru]}}",
            "--set",
            TINY,
        ]
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("seq-sweep")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("adl.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and len(runs) == 3
    assert sorted(c.data.params["model.cell"] for c in children) == ["gru", "lstm"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "eval/loss")] == [20, 40]
        assert {"samples_step0000040.txt", "trainer.pt"} <= {
            a.path for a in client.list_artifacts(child.info.run_id)
        }
    assert parent.info.status == "FINISHED"
    parent_arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.md", "comparison.csv", "bpc_vs_wall.png"} <= parent_arts

    # The comparison names both cells, with the parameter counts and bpc the children logged.
    local = Path(client.download_artifacts(parent.info.run_id, "comparison.csv", str(tmp_path)))
    rows = {r["cell"]: r for r in csv.DictReader(local.open())}
    assert set(rows) == {"gru", "lstm"}
    by_id = {c.info.run_id: c for c in children}
    for cell, row in rows.items():
        child = by_id[row["run_id"]]
        assert child.data.params["model.cell"] == cell
        assert int(row["params"]) == int(child.data.params["seq.param_count"])
        history = client.get_metric_history(child.info.run_id, "eval/loss")
        assert float(row["best_val_bpc"]) == pytest.approx(min(m.value for m in history), abs=1e-4)
    # Same vocabulary, embedding and head: they differ by one gate of nn.LSTM/nn.GRU with
    # n = 32 units, m = 64 inputs and two biases per gate.
    assert int(rows["lstm"]["params"]) - int(rows["gru"]["params"]) == 32 * 64 + 32 * 32 + 2 * 32
