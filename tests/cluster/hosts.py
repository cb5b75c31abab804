"""Hosts with their own addresses and disks on one machine: Linux network namespaces joined by a bridge.

A :class:`Network` is a bridge in a namespace of its own and, for each :class:`Host`, a namespace with a
veth leg on that bridge, an address ``10.77.S.N/24`` and a default route on the link (so that a
process asking the kernel which address reaches the outside, as Ray does, gets the host's own; no
packet leaves the bridge: nothing on it routes). Each host holds one long-lived process, its *anchor*,
in a private mount namespace where ``/tmp`` (with ``$HOME`` under it) and ``/dev/shm`` are fresh
tmpfs mounts and the code folder is bind-mounted read-only: hosts share no disk but the read-only
code and virtualenv. Everything a host runs is entered through its anchor (``nsenter``).

The machine running the tests (the user's laptop) gets a leg on the bridge too, ``10.77.S.100``, so
that it reaches the hosts' servers as a laptop on the cluster's network would; its own disk is not
theirs.

A host's processes are the processes in its network namespace; :meth:`Host.kill` kills them by PID
(``kill -9``, as a host that dies), optionally the anchor with them (the host's disk is gone: a
reboot of a host whose ``/tmp`` is a tmpfs), and :meth:`Host.boot` makes a fresh anchor.

Needs root (CI runs as root) and ``ip`` from iproute2; :func:`unavailable` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PREFIX = "adlt"  # namespace names: adlt<pid>-<role>; stale ones of dead pids are removed on start
LOCK = Path("/tmp/adl-netns.lock")


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def unavailable() -> str | None:
    """Why hosts cannot be made here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (iproute2 / util-linux)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def remove_stale() -> None:
    """Namespaces and root legs left by a test process that died without cleaning up."""
    for entry in Path("/run/netns").glob(f"{PREFIX}*") if Path("/run/netns").is_dir() else []:
        owner = entry.name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            inode = entry.stat().st_ino
            for pid in _pids_in_netns(inode):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", entry.name], capture_output=True)


def _pids_in_netns(inode: int) -> set[int]:
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(d / "ns/net") == f"net:[{inode}]":
                pids.add(int(d.name))
    return pids


class Host:
    """One host: a network namespace with an address, a private disk, and the processes in it."""

    def __init__(self, net: Network, role: str, index: int) -> None:
        self.net, self.role, self.index = net, role, index
        self.ns = f"{net.tag}-{role}"
        self.anchor: subprocess.Popen[bytes] | None = None
        self.home = "/tmp/home"

    @property
    def ip(self) -> str:
        return f"{self.net.prefix}.{self.index}"

    # -- life cycle ---------------------------------------------------------------------------------
    def create(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", "name", "eth0", "netns", self.ns, "type", "veth", "peer", "name", f"v{self.index}",
            "netns", self.net.bridge_ns)  # fmt: skip
        _ip("link", "set", f"v{self.index}", "master", "br0", ns=self.net.bridge_ns)
        _ip("link", "set", f"v{self.index}", "up", ns=self.net.bridge_ns)
        _ip("addr", "add", f"{self.ip}/24", "dev", "eth0", ns=self.ns)
        for dev in ("lo", "eth0"):
            _ip("link", "set", dev, "up", ns=self.ns)
        _ip("route", "add", "default", "dev", "eth0", ns=self.ns)  # on-link: nothing routes it anywhere
        self.boot()

    def boot(self) -> None:
        """A fresh anchor: an empty ``/tmp`` (and ``$HOME``) and ``/dev/shm``, the code read-only."""
        code, stash = str(self.net.code_dir), self.net.stash(self.role)
        # The code is set aside (bound to a folder outside /tmp) before the fresh /tmp covers it, and
        # bound back to its own path, read-only: a checkout under /tmp (CI's may be) stays visible.
        script = (
            f"mkdir -p {stash} && mount --bind {code} {stash} && "
            "mount -t tmpfs -o mode=1777 tmpfs /tmp && mkdir -p -m 700 /tmp/home && "
            "mount -t tmpfs -o mode=1777 tmpfs /dev/shm && "
            f"mkdir -p {code} && mount --bind {stash} {code} && mount -o remount,bind,ro {code} && "
            f"umount {stash} && exec sleep infinity"
        )
        self.anchor = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Ready once the script has run to its end (it has become `sleep`): until then it has children
        # (mount, mkdir) that killing the host's other processes would take down with the chain.
        t0 = time.time()
        while time.time() - t0 < 10:
            with contextlib.suppress(OSError):
                proc = Path(f"/proc/{self.anchor.pid}")
                slept = (proc / "cmdline").read_bytes().startswith(b"sleep\0")
                if slept and os.stat(proc / "root/tmp/home").st_dev != os.stat("/tmp").st_dev:
                    return
            if self.anchor.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"host {self.role}: its private /tmp and read-only code did not come up")

    def pids(self) -> set[int]:
        return _pids_in_netns(_netns_inode(self.ns))

    def kill(self, disk: bool = False) -> set[int]:
        """``kill -9`` every process of the host (its anchor too with ``disk``: the private /tmp is
        gone, as on a rebooted host); returns the PIDs killed."""
        keep = set() if disk or self.anchor is None else {self.anchor.pid}
        killed: set[int] = set()
        for _ in range(5):  # processes may fork while we kill
            pids = self.pids() - keep
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= pids
            time.sleep(0.2)
        if disk and self.anchor is not None:
            self.anchor.wait(timeout=10)
            self.anchor = None
        return killed

    def set_link(self, up: bool) -> None:
        """Cut (or restore) the host's cable: its leg on the bridge goes down."""
        _ip("link", "set", f"v{self.index}", "up" if up else "down", ns=self.net.bridge_ns)

    # -- running things -----------------------------------------------------------------------------
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": f"{self.net.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(self.net.env)
        env.update(extra or {})
        return env

    def _argv(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> list[str]:
        assert self.anchor is not None, f"host {self.role} is down"
        enter = ["nsenter", "-t", str(self.anchor.pid), "-m", "-n", f"--wd={cwd}", "--"]
        return [*enter, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]

    def popen(
        self, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: str = "/tmp"
    ) -> subprocess.Popen[bytes]:
        """A background process on the host, its output in ``log`` (on the laptop's disk)."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                self._argv(argv, self.env(env), cwd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        cwd: str = "/tmp",
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._argv(argv, self.env(env), cwd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def read(self, path: str) -> str:
        """A file on the host's private disk."""
        assert self.anchor is not None
        return Path(f"/proc/{self.anchor.pid}/root{path}").read_text()

    def exists(self, path: str) -> bool:
        return self.anchor is not None and Path(f"/proc/{self.anchor.pid}/root{path}").exists()


class Network:
    """A bridge, the hosts on it, and the laptop's leg: made by :meth:`create`, gone after :meth:`destroy`."""

    def __init__(self, roles: Sequence[str], code_dir: Path, bin_dir: Path, env: Mapping[str, str]) -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge_ns = f"{self.tag}-br"
        self.laptop_dev = f"{self.tag[:11]}c"  # an interface name: at most 15 characters
        self.code_dir, self.bin_dir, self.env = code_dir, bin_dir, dict(env)
        self.prefix = ""
        self.hosts = {role: Host(self, role, i + 1) for i, role in enumerate(roles)}
        self.laptop_ip = ""

    def stash(self, role: str) -> str:
        """A folder outside /tmp where a host's anchor sets the code aside while its /tmp is replaced."""
        return f"/run/{self.tag}-{role}-code"

    def _free_prefix(self) -> str:
        """A 10.77.S.0/24 that no interface of this machine uses yet."""
        used = _ip("-4", "addr").stdout
        free = [s for s in range(1, 255) if f"10.77.{s}." not in used]
        return f"10.77.{random.choice(free)}"

    def create(self) -> Network:
        LOCK.touch()
        with open(LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            remove_stale()
            self.prefix = self._free_prefix()
            self.laptop_ip = f"{self.prefix}.100"
            _ip("netns", "add", self.bridge_ns)
            _ip("link", "add", "br0", "type", "bridge", ns=self.bridge_ns)
            _ip("link", "set", "br0", "up", ns=self.bridge_ns)
            _ip("link", "add", "name", self.laptop_dev, "type", "veth", "peer", "name", "vlaptop",
                "netns", self.bridge_ns)  # fmt: skip
            _ip("link", "set", "vlaptop", "master", "br0", ns=self.bridge_ns)
            _ip("link", "set", "vlaptop", "up", ns=self.bridge_ns)
            _ip("addr", "add", f"{self.laptop_ip}/24", "dev", self.laptop_dev)
            _ip("link", "set", self.laptop_dev, "up")
        for host in self.hosts.values():
            host.create()
        return self

    def destroy(self) -> None:
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.kill(disk=True)
        for ns in [h.ns for h in self.hosts.values()] + [self.bridge_ns]:
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.laptop_dev, check=False)
        for role in self.hosts:
            with contextlib.suppress(OSError):
                os.rmdir(self.stash(role))
