"""Text for the character language model: a file by path, or the standard library's own English.

Nothing is downloaded. The default corpus is ``pydoc_data.topics``: the text that ``help()`` shows
for Python's keywords and topics (``help("with")``), ~465k characters of English prose with code
examples, shipped with every CPython. It is built deterministically by joining the topic texts in
sorted key order with a blank line between them; its SHA-256 is logged so runs on different Python
versions can be told apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.config import ConfigError


def stdlib_corpus() -> str:
    """The help topics of the running Python, joined in sorted key order."""
    from pydoc_data.topics import topics  # ~1 MB of help text: only this corpus reads it

    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


def read_text_file(path: str | Path, min_chars: int = 1) -> str:
    """Read a UTF-8 text file, refusing a missing, empty, binary or too short one with a clear message."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(
            f"data.path: text file not found: {p}. Give the path of a UTF-8 text file, "
            f"or use data.source: stdlib for the built-in English corpus"
        )
    if not p.is_file():
        raise ConfigError(f"data.path: {p} is not a regular file; give the path of a UTF-8 text file")
    raw = p.read_bytes()
    if not raw.strip():
        raise ConfigError(
            f"data.path: {p} is empty (or only whitespace); a UTF-8 text file with at least "
            f"{min_chars} characters is needed"
        )
    if b"\x00" in raw[:65536]:
        raise ConfigError(
            f"data.path: {p} looks binary (it contains NUL bytes); only UTF-8 text files are allowed"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"data.path: {p} is not UTF-8 text (invalid byte at offset {e.start}); only "
            f"UTF-8 text files are allowed (convert it, e.g. with iconv -t UTF-8)"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    if len(text) < min_chars:
        raise ConfigError(
            f"data.path: {p} has {len(text)} characters; at least {min_chars} are needed for "
            f"the training and held-out splits at this batch size and BPTT length"
        )
    return text


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Vocabulary:
    """The sorted set of characters of a text; ids are positions in ``chars``."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Characters → int64 ids; characters outside the vocabulary raise ``ConfigError``."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise ConfigError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A contiguous split: the first (1 - f) of the stream to train on, the last f held out."""
    cut = int(round(len(ids) * (1 - val_fraction)))
    return ids[:cut], ids[cut:]
