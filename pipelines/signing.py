"""A per-user secret key and HMAC-SHA256 signatures, for state adl writes and later trusts.

A sweep's state (``adl_sweep.json``) and Ray Tune's files beside it (``tuner.pkl`` and the
experiment state, which Tune reads with ``pickle``: reading them runs code from whoever wrote them)
are signed with a key only this user can read, so that ``adl sweep --resume`` loads nothing adl
did not write. The key is 32 random bytes (hex) in ``signing.key`` under the user's config folder:
``$ADL_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/adl``, else ``~/.config/adl``; the folder is created
0700 and the key 0600. A key file that others can read or that belongs to another user is refused
(anyone who can read it can forge signatures).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from components.config import ConfigError

CONFIG_DIR_ENV = "ADL_CONFIG_DIR"
KEY_FILE = "signing.key"


class SignatureError(ConfigError):
    """A signature is missing or does not match: the file is not trusted (exit 2)."""


def config_dir() -> Path:
    if d := os.environ.get(CONFIG_DIR_ENV):
        return Path(d).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "adl"


def _check_private(path: Path, mode: int, what: str) -> None:
    st = path.lstat()
    kind_ok = stat.S_ISDIR(st.st_mode) if what == "folder" else stat.S_ISREG(st.st_mode)
    if not kind_ok or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise SignatureError(
            f"adl's signing key {what} {path} must be this user's own and private "
            f"(mode {mode:o}; it is {stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}): "
            f"`chmod {mode:o} {path}`, or point {CONFIG_DIR_ENV} at a private folder"
        )


def signing_key() -> bytes:
    """This user's key, created on first use (folder 0700, file 0600)."""
    folder = config_dir()
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
    _check_private(folder, 0o700, "folder")
    path = folder / KEY_FILE
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another adl process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    _check_private(path, 0o600, "file")
    key = path.read_text().strip()
    if len(key) < 32:
        raise SignatureError(f"adl's signing key {path} is empty or too short; delete it to make a new one")
    return key.encode()


def sign(data: bytes, key: bytes | None = None) -> str:
    """HMAC-SHA256 of ``data`` with this user's key, as hex."""
    return hmac.new(key or signing_key(), data, hashlib.sha256).hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def signed(obj: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """``obj`` with a ``signature`` over everything else in it."""
    body = {k: v for k, v in obj.items() if k != "signature"}
    return {**body, "signature": sign(canonical(body), key)}


def check_signed(obj: Any, where: str, key: bytes | None = None) -> dict[str, Any]:
    """``obj`` if it is a mapping whose ``signature`` matches its contents, else SignatureError."""
    if not isinstance(obj, dict) or not isinstance(obj.get("signature"), str):
        raise SignatureError(f"{where} has no adl signature")
    body = {k: v for k, v in obj.items() if k != "signature"}
    if not hmac.compare_digest(sign(canonical(body), key), obj["signature"]):
        raise SignatureError(
            f"{where}: its adl signature does not match (changed, or not written by this user)"
        )
    return body
