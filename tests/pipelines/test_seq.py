"""``adl train seq`` end to end: bad text files exit 2, a short run lands in MLflow with its artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from components.config import describe
from components.seq.config import SeqConfig
from pipelines.cli.main import main
from tests.pipelines import ui_reads

REPO = Path(__file__).resolve().parents[2]
OWN_TEXT = str(REPO / "configs/seq/own_text.yaml")
MARKOV = str(REPO / "configs/seq/markov.yaml")


@pytest.mark.parametrize(
    "content,reason",
    [
        (None, "text file not found"),
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
    ],
)
def test_bad_text_file_exits_2_with_a_clear_message(tmp_path, tracking_uri, capsys, content, reason):
    path = tmp_path / "book.txt"
    if content is not None:
        path.write_bytes(content)
    code = main(
        [
            "train",
            "seq",
            "--config",
            OWN_TEXT,
            "--set",
            f"data.path={path}",
            "--tracking-uri",
            tracking_uri,
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("adl: error: data.path:") and reason in err and str(path) in err
    assert "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was opened


def test_every_config_key_has_a_doc():
    rows = describe(SeqConfig)
    assert len(rows) > 25
    assert all(doc for _, _, _, doc in rows), [key for key, _, _, doc in rows if not doc]


@pytest.mark.slow
def test_train_seq_logs_metrics_samples_and_checkpoint(tracking_uri, capsys, tmp_path):
    code = main(
        [
            "train",
            "seq",
            "--config",
            MARKOV,
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            "seq-e2e",
            "--no-progress",
            "--set",
            "train.steps=40",
            "--set",
            "train.report_every=20",
            "--set",
            "data.markov_length=20000",
            "--set",
            "train.threads=1",
        ]
    )
    assert code == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("seq-e2e").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["adl.family"] == "seq"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/loss")] == [20, 40]
    # One unit for one quantity: the training and held-out losses both in bits per character (the
    # optimizer's nats / ln 2), so early on, before any overfitting, they agree; in nats the training
    # loss would read ln 2 ≈ 0.69 of the held-out one. The bpc series would repeat the loss: not logged.
    assert run.data.params["loss_unit"] == "bits per character"
    train = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    held_out = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/loss")}
    assert abs(train[20] / held_out[20] - 1) < 0.1, (train, held_out)
    assert not {"eval/bpc", "train/bpc", "seq/source_bpc"} & set(run.data.metrics)
    assert float(run.data.params["seq.source_bpc"]) < held_out[40]  # the source's entropy: the floor
    assert ui_reads.chart_sections(run) == ["eval", "train"]
    assert not ui_reads.repeated_series(client, run) and not ui_reads.one_point_charts(client, run)
    assert run.data.params["model.cell"] == "lstm"
    # The Datasets column: the generated text's training and held-out parts, told apart by digest.
    inputs = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "validation"}
    assert inputs["training"].name == inputs["validation"].name == "markov-K5-order3"
    assert inputs["training"].digest != inputs["validation"].digest
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "learning_curves.png",
        "samples_step0000040.txt",
        "corpus.txt",
        "checkpoint.pt",
        "config.yaml",
    } <= arts
    out = capsys.readouterr().out
    assert "val_loss=" in out
    _, exp_id, run_id = ui_reads.printed_run_page(out)
    assert (exp_id, run_id) == (run.info.experiment_id, run.info.run_id)
    assert "**Result:** finished seq in" in run.data.tags["mlflow.note.content"]
    # The model as an MLflow model: it loads and gives the checkpoint's logits on a window of bptt.
    import mlflow
    import mlflow.pytorch

    from components.config import load
    from components.seq.trainer import SeqTrainer

    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert (logged.name, logged.source_run_id) == ("model", run.info.run_id)
    # Linked to the run's metrics at the step it was taken (the last report), as its page shows them.
    by_key = {m.key: m for m in client.get_logged_model(logged.model_id).metrics}
    assert by_key["eval/loss"].step == 40 and by_key["eval/loss"].value == held_out[40]
    assert not [k for k in by_key if k.startswith("system/")]
    assert [(o.model_id, o.step) for o in client.get_run(run.info.run_id).outputs.model_outputs] == [
        (logged.model_id, 40)
    ]
    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pytorch.load_model(logged.model_uri)
    trainer = SeqTrainer(load(SeqConfig, MARKOV, ["data.markov_length=20000", "train.threads=1"]))
    ckpt = client.download_artifacts(run.info.run_id, "checkpoint.pt", str(tmp_path))
    trainer.load_state_dict(torch.load(ckpt, weights_only=True))
    trainer.model.eval()
    tokens = torch.randint(0, trainer.model.vocab_size, (3, trainer.cfg.train.bptt))
    with torch.no_grad():
        torch.testing.assert_close(served(tokens), trainer.model(tokens)[0], rtol=1e-5, atol=1e-5)
