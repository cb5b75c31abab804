"""A benchmark's JSON, rewritten whole after every finished row, so that a run stopped by its time
limit (a GPU machine lent for minutes, a command capped at 10) still leaves what it measured.

``"complete"`` is false until the script's last write; each write goes to a temporary file beside the
target and is renamed over it, so the file on disk is always whole JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save(path: Path, rows: dict[str, Any], complete: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps({**rows, "complete": complete}, indent=1, default=str))
    tmp.replace(path)
