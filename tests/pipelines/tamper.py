"""Tampering with a DQN checkpoint as other code (or an attacker) might: files rewritten, then the
manifest resealed with their new sizes and CRCs, so that only adl's checks of the contents can tell."""

from __future__ import annotations

import json
import os
from pathlib import Path


def rewrite_replay(path: Path, change) -> None:
    """Rewrite a replay snapshot through ``change(table, meta) -> (table, meta)``, as other code might."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()  # not a map of the file rewritten
    meta = json.loads(table.schema.metadata[b"adl"])
    table, meta = change(table, meta)
    table = table.replace_schema_metadata({"adl": json.dumps(meta)})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def reseal(ckpt: Path, manifest: dict) -> None:
    """Give the manifest each file's new size and crc32: corrupt files whose CRC matches."""
    from pipelines.dqn.checkpoint import _crc32

    for name in manifest["files"] if isinstance(manifest["files"], dict) else []:
        if (ckpt / name).is_file():
            manifest["files"][name] = {"bytes": (ckpt / name).stat().st_size, "crc32": _crc32(ckpt / name)}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


class Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def with_column(name, values):
    import pyarrow as pa

    return lambda t, m: (
        t.set_column(t.schema.get_field_index(name), name, pa.array(values, t[name].type)),
        m,
    )
