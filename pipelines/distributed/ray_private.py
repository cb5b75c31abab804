"""What a local Ray started by adl exposes: loopback only, a private temp dir, a private token file.

Ray 2.60 started plainly (``ray.init()``) binds its GCS, raylet, object manager, workers and the
dashboard agent's gRPC port on every interface and three Prometheus metrics ports on 0.0.0.0,
keeps its sessions under a world-writable ``/tmp/ray`` and writes ``~/.ray/auth_token`` 0644.
Everything here is for a Ray that adl *starts* on this host; a cluster that adl joins is the
cluster operator's (README, "Security").

- **Loopback.** Ray takes its node IP from ``ray._private.services.get_node_ip_address``, which
  returns the host's LAN address unless ``ray_constants.ENABLE_RAY_CLUSTER`` is off (what
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` sets at import); with a node IP of 127.0.0.1 every
  server (GCS, raylet, object manager, core workers, dashboard and runtime-env agents, the
  metrics exporters of the agent, the dashboard and the autoscaler monitor) binds to it. The
  constant is switched off only while ``ray.init`` starts the node, so that a later join of a real
  cluster from the same process still reports a reachable address.
- **Temp dir.** Ray makes its temp dir and every session folder in it 0777
  (``ray._common.utils.try_make_directory_shared``), so adl gives Ray ``<tmp>/adl-ray-<uid>/r``
  and keeps the folder above it 0700, checked to be this user's own directory (not a link):
  sockets, logs, spilled objects and Tune's staging files are out of other users' reach. A
  folder of that name owned by someone else is not used; a fresh ``mkdtemp`` one is.
- **Token.** Ray 2.60 turns token authentication on for a local ``ray.init`` and writes a missing
  token file with the process umask. adl writes it first, 0600 in a 0700 folder, and tightens an
  existing one of its own user that others can read.
- **Process group.** Ray starts its GCS, raylet and agents in the caller's process group, so a
  signal to the group (what ``timeout``, ``scancel`` or ``kill -- -PGID`` send, and Ctrl-C in a
  terminal) kills them at the same moment as the command that should stop them cleanly: the GCS
  died first, a sweep's graceful stop then waited 60 s for it and exited 1. adl starts them in a
  session of their own (``start_new_session``); they still die with their parent (Ray's
  ``PR_SET_PDEATHSIG`` fate sharing), and adl's own handler stops them in order.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray._private.ray_constants as ray_constants
import ray._private.services as services

LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def own_process_group() -> Iterator[None]:
    """While starting a local Ray: its processes start in a session of their own (see above)."""
    before = services.ConsolePopen

    class OwnSession(before):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = before


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While starting a local Ray: node IP 127.0.0.1, so that every Ray server binds to loopback."""
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _own_private_dir(path: Path) -> bool:
    """``path`` is a real directory of this user; made 0700 if it was looser."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # created in between: check what is there now
            return _own_private_dir(path)
        return True
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    if stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o700)
    return True


def private_temp_dir() -> str:
    """Ray's temp dir: ``r`` in ``<tmp>/adl-ray-<uid>`` (0700, this user's), else in a fresh
    private ``mkdtemp`` folder.

    Short on purpose: Ray's unix sockets live under it and their paths may not exceed 107 bytes.
    """
    path = Path(tempfile.gettempdir()) / f"adl-ray-{os.getuid()}"
    if not _own_private_dir(path):
        print(f"adl: warning: {path} is not this user's private folder; Ray uses a new one", file=sys.stderr)
        path = Path(tempfile.mkdtemp(prefix="adl-ray-"))
    return str(path / "r")  # Ray makes this one 0777; its parent keeps everyone else out


def token_file() -> Path | None:
    """The token file a local Ray with token auth reads, or None when there is none to manage
    (``RAY_AUTH_MODE`` other than token, or the token given in ``RAY_AUTH_TOKEN``)."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"


def private_token_file() -> None:
    """Write a missing token file 0600 (folder 0700 if adl creates it); tighten one others can read."""
    path = token_file()
    if path is None:
        return
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        with contextlib.suppress(FileExistsError):  # another process wrote it first: tighten that
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))  # what `ray get-auth-token --generate` writes
            return
    st = path.lstat()
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o600)
        print(f"adl: made Ray's token file {path} readable by this user only (0600)", file=sys.stderr)
