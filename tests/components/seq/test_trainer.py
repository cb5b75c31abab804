"""The sequence trainer: learning against known optima, exact resume, artifacts and config errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from components.config import ConfigError, load
from components.seq.config import SeqConfig
from components.seq.synthetic import ADDING_TRIVIAL_MSE
from components.seq.trainer import SeqTrainer

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "seq"

TINY_MARKOV = [
    "task=char_lm",
    "data.source=markov",
    "data.markov_length=6000",
    "model.hidden_size=12",
    "model.num_layers=2",
    "model.embed_dim=4",
    "model.dropout=0.2",
    "train.batch_size=4",
    "train.bptt=16",
    "train.steps=6",
    "train.report_every=3",
    "train.eval_chars=0",
    "sample.length=20",
    "sample.prime=ab",
]
TINY_ADDING = [
    "task=adding",
    "model.hidden_size=8",
    "model.num_layers=1",
    "data.length=10",
    "train.batch_size=8",
    "train.steps=6",
    "train.report_every=3",
    "train.eval_batches=2",
]


def _trainer(overrides: list[str], path: Path | None = None) -> SeqTrainer:
    return SeqTrainer(load(SeqConfig, path, overrides))


def _run(trainer: SeqTrainer) -> dict[str, float]:
    metrics: dict[str, float] = {}
    while trainer.position < trainer.total:
        metrics = trainer.run_chunk()
    return metrics


@pytest.mark.slow
def test_markov_source_bpc_reaches_the_entropy_rate() -> None:
    """configs/seq/markov.yaml: 3rd-order chain over 5 letters, H ≈ 1.527 bits; 800 steps, seeded."""
    trainer = _trainer([], CONFIGS / "markov.yaml")
    entropy = trainer.task.markov.entropy_rate()  # type: ignore[union-attr]
    m = _run(trainer)
    assert m["val_bpc"] - entropy < 0.05, (m["val_bpc"], entropy)
    # It cannot beat the true chain on the same held-out text by more than sampling noise.
    assert m["val_bpc"] > m["source_bpc"] - 0.02
    assert abs(m["val_perplexity"] - 2 ** m["val_bpc"]) < 1e-9
    assert "time_to_target_s" in m  # the default target is H + 0.05


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_adding_problem_t50_is_solved_by_both_cells(cell: str) -> None:
    """T = 50, hidden 64: held-out MSE < 0.01 within 2,000 steps, far below the trivial 0.167."""
    trainer = _trainer([f"model.cell={cell}", "train.steps=2000"], CONFIGS / "adding.yaml")
    first = trainer.run_chunk()
    assert first["trivial_mse"] == ADDING_TRIVIAL_MSE
    best = first["val_mse"]
    while trainer.position < trainer.total and best >= 0.01:
        best = min(best, trainer.run_chunk()["val_mse"])
    assert best < 0.01, f"{cell}: best held-out MSE {best:.4f} after {trainer.position} steps"


@pytest.mark.parametrize(
    "overrides", [TINY_MARKOV, TINY_ADDING, [*TINY_MARKOV, "model.impl=explicit", "model.cell=gru"]]
)
def test_resume_from_a_checkpoint_is_exact(overrides: list[str]) -> None:
    """2 + 2 steps through torch.save / torch.load(weights_only=True) equal 4 uninterrupted steps."""
    overrides = [*overrides, "train.steps=4", "train.report_every=2"]
    straight = _trainer(overrides)
    _run(straight)

    first = _trainer(overrides)
    first.run_chunk()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = _trainer(overrides)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert resumed.position == 2
    m = resumed.run_chunk()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert m["val_loss"] == straight.history["val_loss"][-1][1]


def test_metrics_and_artifacts_of_a_char_lm(tmp_path: Path) -> None:
    trainer = _trainer([*TINY_MARKOV, "train.target=100"])
    m = trainer.run_chunk()
    for key in (
        "val_loss",
        "val_bpc",
        "val_perplexity",
        "val_accuracy",
        "train_bpc",
        "tokens_per_s",
        "params",
        "wall_s",
        "source_bpc",
    ):
        assert key in m
    assert m["val_loss"] == m["val_bpc"] and 0 <= m["val_accuracy"] <= 1
    assert m["time_to_target_s"] == m["wall_s"] and m["steps_to_target"] == 3  # reached at once
    assert m["tokens_per_s"] == pytest.approx(3 * 4 * 16 / trainer.train_s)
    assert m["params"] == sum(p.numel() for p in trainer.model.parameters())
    paths = trainer.write_artifacts(tmp_path, final=True)
    names = {p.name for p in paths}
    assert names == {"learning_curves.png", "samples_step0000003.txt", "corpus.txt"}
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    sample = (tmp_path / "samples_step0000003.txt").read_text()
    lines = sample.splitlines()
    assert sample.count("--- temperature") == 3 and lines[0] == "--- temperature 0.5 ---"
    assert lines[1].startswith("ab") and len(lines[1]) == 2 + 20 and set(lines[1]) <= set("abcde")
    assert "entropy rate" in (tmp_path / "corpus.txt").read_text()
    # Intermediate reports carry one short sample only.
    inter = trainer.write_artifacts(tmp_path / "inter", final=False)
    assert {p.name for p in inter} == {"learning_curves.png", "samples_step0000003.txt"}
    assert (tmp_path / "inter" / "samples_step0000003.txt").read_text().count("--- temperature") == 1


def test_explicit_cells_learn_too() -> None:
    trainer = _trainer(
        [
            *TINY_MARKOV,
            "model.impl=explicit",
            "train.steps=60",
            "train.report_every=60",
            "train.lr=0.01",
            "model.dropout=0",
        ]
    )
    m = trainer.run_chunk()
    assert m["val_bpc"] < 2.32 - 0.2  # below the uniform log2(5) over the alphabet


def test_textbook_regression_learns_below_the_trivial_predictor() -> None:
    trainer = _trainer(["train.steps=150", "train.report_every=150"], CONFIGS / "textbook.yaml")
    assert trainer.params == 2560 + 21
    m = trainer.run_chunk()
    assert m["trivial_mse"] == pytest.approx(1.01)
    assert m["val_mse"] < 0.5 * m["trivial_mse"]


def test_text_file_source(tmp_path: Path) -> None:
    p = tmp_path / "own.txt"
    p.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    trainer = _trainer([*TINY_MARKOV, "data.source=file", f"data.path={p}", "sample.prime=the "])
    assert trainer.task.vocab.chars == " .abcdefghijklmnopqrstuvwxyz"  # type: ignore[union-attr]
    assert trainer.run_chunk()["val_bpc"] > 0


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.source=file"], "data.path: required"),
        (["data.path=x.txt"], "set data.source: file"),
        (["model.cell=rnn"], "model.cell"),
        (["train.step=1"], "Did you mean .steps."),
        (["sample.temperatures=[0.5, 0]"], "sample.temperatures"),
    ],
)
def test_bad_configs_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(SeqConfig, None, overrides)


def test_missing_text_file_is_refused_when_the_trainer_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        _trainer(["data.source=file", f"data.path={tmp_path / 'nope.txt'}"])
