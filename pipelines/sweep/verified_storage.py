"""A sweep's storage as Tune sees it on ``--resume``: the files adl verified, served as they were
verified.

``adl sweep --resume`` checks the signature of every file Tune will unpickle
(``pipelines/sweep/signature.py``), then Ray starts and Tune restores: seconds later, and from the
storage again. Whoever can write the sweep's folder in that window could swap ``tuner.pkl`` for a
payload after the check and before the use. So the resume reads every trusted file once, checks it,
keeps its bytes, and hands Tune this filesystem over the real one:

- a trusted file that was verified is read from the bytes that were checked, whatever is on disk
  now;
- a trusted file that was *not* verified (a newer ``experiment_state-*.json`` dropped beside the
  others after the check) does not exist for Tune: it is left out of listings and cannot be
  opened;
- what Tune writes itself from here on (its new state files) is read back from the storage as
  usual, and so is every file Tune does not unpickle (trial checkpoints: adl loads those with
  ``weights_only=True`` and JSON).

Everything else (listings, writes, checkpoints, deletes) goes to the real filesystem: local folder,
S3 or GCS. The filesystem pickles (Tune sends it to each trial), bytes included.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.sweep.signature import is_trusted


class VerifiedStorage(pafs.FileSystemHandler):
    """``base`` (a pyarrow filesystem) with the trusted files under ``root`` pinned to ``verified``
    (path relative to ``root`` -> the bytes whose digest adl checked)."""

    def __init__(self, base: pafs.FileSystem, root: str, verified: dict[str, bytes]) -> None:
        self.base, self.root = base, root.rstrip("/")
        self.verified = dict(verified)
        self.written: set[str] = set()  # trusted files this process wrote after the check

    def __reduce__(self) -> Any:
        return (_rebuild, (self.base, self.root, self.verified, sorted(self.written)))

    # -- which files ----------------------------------------------------------------------------
    def _rel(self, path: str) -> str | None:
        path = path.rstrip("/")
        if path == self.root or not path.startswith(self.root + "/"):
            return None
        return path[len(self.root) + 1 :]

    def _pinned(self, path: str) -> bytes | None:
        rel = self._rel(path)
        return self.verified.get(rel) if rel is not None and rel not in self.written else None

    def _hidden(self, path: str) -> bool:
        """A trusted file adl did not verify, nor this process write."""
        rel = self._rel(path)
        if rel is None or not is_trusted(rel):
            return False
        return rel not in self.verified and rel not in self.written

    def _wrote(self, path: str) -> None:
        rel = self._rel(path)
        if rel is not None and is_trusted(rel):
            self.written.add(rel)

    # -- reading ----------------------------------------------------------------------------------
    def _info(self, info: pafs.FileInfo) -> pafs.FileInfo | None:
        if self._hidden(info.path):
            return None
        pinned = self._pinned(info.path)
        if pinned is not None:
            return pafs.FileInfo(info.path, pafs.FileType.File, size=len(pinned), mtime=info.mtime)
        return info

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        out = []
        for info in self.base.get_file_info(paths):
            shown = self._info(info)
            out.append(shown if shown is not None else pafs.FileInfo(info.path, pafs.FileType.NotFound))
        return out

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return [i for i in map(self._info, self.base.get_file_info(selector)) if i is not None]

    def _open(self, path: str, opener: Any) -> Any:
        if self._hidden(path):
            raise FileNotFoundError(f"{path}: not part of the sweep state adl verified")
        pinned = self._pinned(path)
        return pa.BufferReader(pinned) if pinned is not None else opener(path)

    def open_input_stream(self, path: str) -> Any:
        return self._open(path, self.base.open_input_stream)

    def open_input_file(self, path: str) -> Any:
        return self._open(path, self.base.open_input_file)

    # -- writing: to the real storage; a trusted file written here is Tune's own from now on ------
    def open_output_stream(self, path: str, metadata: Any) -> Any:
        self._wrote(path)
        return self.base.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        self._wrote(path)
        return self.base.open_append_stream(path, metadata=metadata)

    def move(self, src: str, dest: str) -> None:
        self._wrote(dest)
        self.base.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self._wrote(dest)
        self.base.copy_file(src, dest)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.base.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.base.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.base.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("adl does not empty a storage root")

    def delete_file(self, path: str) -> None:
        self.base.delete_file(path)

    # -- identity ---------------------------------------------------------------------------------
    def get_type_name(self) -> str:
        return f"adl-verified+{self.base.type_name}"

    def normalize_path(self, path: str) -> str:
        return str(self.base.normalize_path(path))

    def equals(self, other: Any) -> bool:
        return isinstance(other, VerifiedStorage) and (other.base, other.root) == (self.base, self.root)


def _rebuild(
    base: pafs.FileSystem, root: str, verified: dict[str, bytes], written: list[str]
) -> VerifiedStorage:
    handler = VerifiedStorage(base, root, verified)
    handler.written = set(written)
    return handler


def verified_filesystem(base: pafs.FileSystem, root: str, verified: dict[str, bytes]) -> pafs.FileSystem:
    """The filesystem to hand Tune (``Tuner.restore(root, ..., storage_filesystem=...)``)."""
    return pafs.PyFileSystem(VerifiedStorage(base, root, verified))
