"""Data cards: digests that change exactly when the data (or a generated set's recipe) does, and the
cards each trainer gives for MLflow's Datasets column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.config import build, load
from components.data_card import HASHED_ROWS, array_digest, recipe_digest
from components.gan.config import DataConfig, GanConfig
from components.gan.data import data_card, make_source
from components.gan.trainer import GanTrainer
from components.seq.config import SeqConfig
from components.seq.tasks import make_task

REPO = Path(__file__).resolve().parents[2]


def test_array_digest_follows_the_content_beyond_the_rows_hashed_byte_for_byte() -> None:
    x = np.random.default_rng(0).random((3 * HASHED_ROWS, 4)).astype(np.float32)
    same = x.copy()
    assert array_digest(x) == array_digest(same)
    late = x.copy()
    late[-1, -1] += 0.5  # past the rows hashed byte for byte: found through the sum
    early = x.copy()
    early[0, 0] += 0.5
    digests = {array_digest(a) for a in (x, late, early, x.astype(np.float64), x.reshape(-1, 2))}
    assert len(digests) == 5  # content, type and shape each change it


def test_recipe_digest_ignores_key_order_but_not_values() -> None:
    assert recipe_digest({"a": 1, "b": 0.5}) == recipe_digest({"b": 0.5, "a": 1})
    assert recipe_digest({"a": 1, "b": 0.5}) != recipe_digest({"a": 1, "b": 0.25})


def test_mixture_cards_are_their_recipe() -> None:
    ring = data_card(DataConfig(kind="ring8", sigma=0.05), make_source(DataConfig(kind="ring8", sigma=0.05)))
    assert (ring.name, ring.rows, ring.shape(), ring.local) == ("ring8", None, [-1, 2], False)
    assert "8 modes" in ring.source and "σ=0.05" in ring.source
    wider = DataConfig(kind="ring8", sigma=0.1)
    assert data_card(wider, make_source(wider)).digest != ring.digest
    again = DataConfig(kind="ring8", sigma=0.05)
    assert data_card(again, make_source(again)).digest == ring.digest


def test_digits_and_image_folder_cards_are_hashed_by_content(tmp_path: Path) -> None:
    digits = data_card(DataConfig(kind="digits"), make_source(DataConfig(kind="digits")))
    assert (digits.rows, digits.sample_shape) == (1797, (1, 8, 8))
    assert digits.source == "sklearn.datasets.load_digits"
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (40 * i, 0, 0)).save(folder / f"{i}.png")
    cfg = DataConfig(kind="images", path=str(folder), image_size=8)
    card = data_card(cfg, make_source(cfg))
    assert (card.name, card.rows, card.shape(), card.local) == ("faces", 3, [3, 3, 8, 8], True)
    assert card.source == str(folder.resolve())
    Image.new("RGB", (20, 20), (0, 0, 255)).save(folder / "1.png")  # one image changed
    assert data_card(cfg, make_source(cfg)).digest != card.digest


def test_gan_trainer_card_is_made_on_the_cpu_before_the_source_moves() -> None:
    cfg = build(GanConfig, {"data": {"kind": "digits"}, "train": {"steps": 1, "device": "cpu"}})
    (card,) = GanTrainer(cfg).datasets()
    assert card == data_card(cfg.data, make_source(cfg.data))


def test_char_lm_cards_split_training_from_held_out_text() -> None:
    cfg = load(SeqConfig, REPO / "configs/seq/markov.yaml", ["data.markov_length=5000", "train.threads=1"])
    train, val = make_task(cfg).data_cards()
    assert (train.context, val.context) == ("training", "validation")
    assert train.rows + val.rows == 5000 and train.digest != val.digest
    assert train.name == "markov-K5-order3" and "order 3" in train.source
    other = load(SeqConfig, REPO / "configs/seq/markov.yaml", ["data.markov_length=5000", "data.data_seed=7"])
    assert make_task(other).data_cards()[0].digest != train.digest


@pytest.mark.parametrize("task", ["adding", "regression"])
def test_regression_cards_are_a_recipe_and_a_fixed_held_out_set(task: str) -> None:
    cfg = build(SeqConfig, {"task": task, "data": {"length": 12}, "train": {"eval_batches": 2}})
    train, val = make_task(cfg).data_cards()
    assert train.rows is None and val.rows == 2 * cfg.train.batch_size
    assert train.sample_shape == val.sample_shape == (12, 2 if task == "adding" else cfg.data.input_dim)
    assert val.context == "validation" and train.digest != val.digest
    assert make_task(cfg).data_cards() == [train, val]  # the same config, the same data
