"""Signatures over the files of a Ray Tune experiment folder that Tune unpickles when it resumes.

``Tuner.restore`` (Ray 2.60) reads, with ``pickle``/``cloudpickle``: ``tuner.pkl``; the newest
``experiment_state-*.json`` (trial states are cloudpickled inside the JSON); the newest search
algorithm and callback states (``search_gen_state-*.json``, ``searcher-state-*.pkl``,
``callback-states-*.pkl``: pickles whatever their names); and, once the resumed run ends, each
errored trial's ``error.pkl``. Anyone who can write one of those files runs code as the user who
resumes. So adl signs, with the user's key (``pipelines/signing.py``), a digest of every *trusted*
file: every file at the top of the folder (whatever its name; dot-files excepted, Tune never reads
them) and every ``<trial>/error.pkl``. A resume checks, before Ray or Tune touches the folder,
that each trusted file present is listed with its digest: one changed, or present but not listed,
is refused. Trial checkpoints are not covered: adl reads them itself, with ``weights_only=True``
and JSON.

The signature (``adl_signature.json``) is written when the Tuner has written ``tuner.pkl`` and
each time Tune saves its state (from the Tune callback in ``pipelines/distributed/tune_signing.py``,
into the driver's staging folder, so that it travels to the storage with the files it covers).
Local folders and any URI pyarrow understands (``s3://``, ``gs://``, ``file://``) work alike.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from pipelines.signing import SignatureError, check_signed, signed

SIGNATURE_FILE = "adl_signature.json"
FORMAT = "adl-tune-signature-1"
TUNER_FILE = "tuner.pkl"


def open_folder(path_or_uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path_or_uri and not path_or_uri.startswith("file://"):
        fs, path = pafs.FileSystem.from_uri(path_or_uri)
        return fs, path.rstrip("/")
    local = path_or_uri[len("file://") :] if path_or_uri.startswith("file://") else path_or_uri
    return pafs.LocalFileSystem(), str(Path(local).resolve())


def is_trusted(rel: str) -> bool:
    """Is the file at ``rel`` (relative to the experiment folder) one Tune may unpickle?"""
    parts = rel.split("/")
    if parts[-1].startswith(".") or rel == SIGNATURE_FILE:
        return False
    return len(parts) == 1 or (len(parts) == 2 and parts[1] == "error.pkl")


def trusted_files(fs: pafs.FileSystem, root: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    rels = (i.path[len(root) :].lstrip("/") for i in infos if i.type == pafs.FileType.File)
    return sorted(r for r in rels if is_trusted(r))


def digest(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def signature_text(files: dict[str, str]) -> str:
    return json.dumps(signed({"format": FORMAT, "files": dict(sorted(files.items()))}), indent=1)


def write_signature(fs: pafs.FileSystem, root: str, files: dict[str, str]) -> None:
    tmp = f"{root}/.{SIGNATURE_FILE}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(signature_text(files).encode())
    fs.move(tmp, f"{root}/{SIGNATURE_FILE}")


def read_signature(fs: pafs.FileSystem, root: str) -> dict[str, str]:
    """The digests of a signed folder; SignatureError if unsigned or the signature does not match."""
    where = f"{root}/{SIGNATURE_FILE}"
    try:
        with fs.open_input_stream(where) as f:
            raw: Any = json.loads(f.read())
    except FileNotFoundError:
        raise SignatureError(f"{where} is missing: the folder was not signed by adl") from None
    except (OSError, ValueError) as e:
        raise SignatureError(f"{where} cannot be read ({e})") from None
    body = check_signed(raw, where)
    files = body.get("files")
    if body.get("format") != FORMAT or not isinstance(files, dict):
        raise SignatureError(f"{where} is not an adl signature ({FORMAT})")
    return {str(k): str(v) for k, v in files.items()}


def sign_folder(path_or_uri: str, keep: dict[str, str] | None = None) -> dict[str, str]:
    """Sign the trusted files now in the folder (plus ``keep``: digests of files known good that
    are listed even if absent); returns the digests signed."""
    fs, root = open_folder(path_or_uri)
    files = dict(keep or {})
    files.update({rel: digest(fs, f"{root}/{rel}") for rel in trusted_files(fs, root)})
    write_signature(fs, root, files)
    return files


def verify_folder(path_or_uri: str) -> dict[str, bytes]:
    """Check every trusted file of the folder against its signature; returns each one's bytes as they
    were checked (read once: what is checked is what the resume hands Tune, ``verified_storage.py``).

    Raises:
        SignatureError: no or a broken signature, ``tuner.pkl`` missing, or a trusted file changed
            or not listed (the message names the first such file).
    """
    fs, root = open_folder(path_or_uri)
    files = read_signature(fs, root)
    present = trusted_files(fs, root)
    if TUNER_FILE not in present:
        raise SignatureError(f"{root}/{TUNER_FILE} is missing")
    contents = {}
    for rel in present:
        if rel not in files:
            raise SignatureError(f"{root}/{rel} is not listed in {SIGNATURE_FILE} (added after adl signed)")
        with fs.open_input_stream(f"{root}/{rel}") as f:
            data = bytes(f.read())
        if hashlib.sha256(data).hexdigest() != files[rel]:
            raise SignatureError(f"{root}/{rel} differs from what adl signed (changed after it was signed)")
        contents[rel] = data
    return contents


def describe_changes(path_or_uri: str) -> list[tuple[str, str]]:
    """Each trusted file of the folder (and each signed one no longer there) with what signing it now
    would vouch for: ``unchanged``, ``changed since adl signed it``, ``added after adl signed``,
    ``signed, now missing``, or ``never signed`` (no valid signature in the folder)."""
    fs, root = open_folder(path_or_uri)
    try:
        files = read_signature(fs, root)
    except SignatureError:
        files = None
    present = trusted_files(fs, root)
    out = []
    for rel in present:
        if files is None:
            status = "never signed"
        elif rel not in files:
            status = "added after adl signed"
        elif digest(fs, f"{root}/{rel}") != files[rel]:
            status = "changed since adl signed it"
        else:
            status = "unchanged"
        out.append((rel, status))
    out += [(rel, "signed, now missing") for rel in sorted(set(files or {}) - set(present))]
    return out
