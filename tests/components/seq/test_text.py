"""Text sources: the built-in corpus, files by path and their errors, the vocabulary and the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import ConfigError
from components.seq.text import Vocabulary, read_text_file, sha256, split_ids, stdlib_corpus


def test_stdlib_corpus_is_deterministic_english() -> None:
    a, b = stdlib_corpus(), stdlib_corpus()
    assert a == b and sha256(a) == sha256(b)
    assert len(a) > 300_000  # ~465k characters on CPython 3.11
    # English prose: letters and spaces dominate, and common words are there.
    letters = sum(c.isalpha() or c == " " for c in a) / len(a)
    assert letters > 0.75
    for word in (" the ", "statement", "function"):
        assert word in a


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "not found"),
        (b"", "is empty"),
        (b"  \n\t\n", "is empty"),
        (b"PK\x03\x04\x00\x00binary\x00", "looks binary"),
        (b"caf\xe9 au lait", "is not UTF-8"),
        (b"tiny", "has 4 characters"),
    ],
)
def test_bad_text_files_are_refused_with_the_path_and_the_reason(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    p = tmp_path / "corpus.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_text_file(p, min_chars=100)
    assert expected in str(err.value) and str(p) in str(err.value)


def test_a_directory_is_not_a_text_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        read_text_file(tmp_path)


def test_utf8_file_is_read_without_its_byte_order_mark(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffGrüße, 世界\n".encode())
    assert read_text_file(p) == "Grüße, 世界\n"


def test_vocabulary_round_trip_and_unknown_characters() -> None:
    vocab = Vocabulary.from_text("hello world")
    assert vocab.chars == " dehlorw"
    ids = vocab.encode("hello")
    assert ids.tolist() == [3, 2, 4, 4, 5]
    assert vocab.decode(ids) == "hello"
    with pytest.raises(ConfigError, match="'z'"):
        vocab.encode("z")


def test_split_is_contiguous_with_the_held_out_part_last() -> None:
    ids = np.arange(100)
    train, val = split_ids(ids, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
