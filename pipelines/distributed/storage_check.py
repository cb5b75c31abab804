"""Can every node of the cluster read and write the sweep's storage? Asked before any trial starts.

Ray Tune keeps a sweep's state and its trials' checkpoints in ``storage_path``; each trial writes its
checkpoints there from whatever node it runs on, and the driver syncs the experiment state there.
On a cluster of several machines a folder on the driver's disk (``~/.adl/sweeps`` under ``adl
submit``) is not there for the workers: every trial errors at its first checkpoint, after the
sweep has run for a minute (Tune: "A local path on the head node is not accessible by worker
nodes"). So adl asks first: the driver writes a marker with a random nonce into the storage, a
zero-CPU task pinned to each node that can run a trial reads it back and writes one of its own, and
the driver reads those. A node that cannot see the driver's marker is on another disk; one that
cannot write, or lacks the credentials, says why. Each failure is named with its node, and the sweep
is refused (exit 2) with the fix, before its parent run is opened or any state is written.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import pyarrow.fs as pafs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from components.config import ConfigError
from pipelines.sweep.signature import open_folder

PROBE_PREFIX = ".adl-storage-probe-"


def _probe(storage: str, folder: str, nonce: str, node_id: str) -> str | None:
    """On one node: the driver's marker read back, this node's written; None, or what went wrong."""
    try:
        fs, root = open_folder(storage)
        where = f"{root}/{folder}"
        try:
            with fs.open_input_stream(f"{where}/driver") as f:
                seen = f.read().decode()
        except FileNotFoundError:
            return f"does not see the marker the driver wrote at {where}/driver: it is another disk"
        if seen != nonce:
            return f"reads a different marker at {where}/driver: it is another storage"
        with fs.open_output_stream(f"{where}/{node_id}") as f:
            f.write(nonce.encode())
    except Exception as e:  # noqa: BLE001 - every failure is reported with its node
        return f"cannot use it ({type(e).__name__}: {str(e).strip().splitlines()[0][:300]})"
    return None


def _fits(node: dict[str, Any], need: dict[str, float]) -> bool:
    have = node.get("Resources") or {}
    return all(float(have.get(k, 0.0)) >= v for k, v in need.items() if v > 0)


def check_storage_reachable(
    storage: str, need: dict[str, float], what: str | None = None, timeout_s: float = 60.0
) -> int:
    """Refuse (ConfigError) unless every alive node that could host a trial (``need``: its resources,
    Ray's names: CPU, GPU, custom) reads and writes ``storage`` as the driver does. Returns the number
    of nodes checked (0 on a one-node cluster: its own disk is the storage). ``what`` names the
    storage in messages (default: ``storage_path <storage>``)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    here = ray.get_runtime_context().get_node_id()
    nodes = [n for n in alive if _fits(n, need) and n["NodeID"] != here]
    if len(alive) <= 1 or not nodes:
        return 0
    what = what or f"storage_path {storage}"
    fs, root = open_folder(storage)
    folder = PROBE_PREFIX + secrets.token_hex(8)
    nonce = secrets.token_hex(16)
    where = f"{root}/{folder}"
    try:
        fs.create_dir(where, recursive=True)
        with fs.open_output_stream(f"{where}/driver") as f:
            f.write(nonce.encode())
    except Exception as e:  # noqa: BLE001
        why = f"{type(e).__name__}: {e}"
        raise ConfigError(f"{what}: the driver cannot write to it ({why})") from None
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    refs = {
        n["NodeID"]: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(storage, folder, nonce, n["NodeID"])
        for n in nodes
    }
    try:
        ready, late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        for ref in late:
            ray.cancel(ref, force=True)
        failures = {
            f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})": why
            for n in nodes
            if (why := _answer(refs[n["NodeID"]], ready, timeout_s, fs, f"{where}/{n['NodeID']}", nonce))
        }
    finally:
        with contextlib.suppress(Exception):  # a probe folder left behind is harmless
            fs.delete_dir(where)
    if failures:
        lines = "; ".join(f"node {name} {why}" for name, why in sorted(failures.items()))
        raise ConfigError(
            f"{what}: every node that runs trials must read and write the sweep's storage, "
            f"and {len(failures)} of {len(nodes)} cannot: {lines}. Set storage_path to storage every node "
            f"shares: s3://BUCKET/PATH (with the S3 credentials and endpoint in every node's environment: "
            f"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), gs://..., or a folder every node "
            f"mounts (NFS)"
        )
    return len(nodes)


def _answer(
    ref: Any, ready: list[Any], timeout_s: float, fs: pafs.FileSystem, marker: str, nonce: str
) -> str | None:
    """What one node's probe found (None: it reads the driver's marker and the driver reads its own)."""
    if ref not in ready:
        return f"did not answer within {timeout_s:.0f}s"
    try:
        err: str | None = ray.get(ref)
    except Exception as e:  # noqa: BLE001 - the node died under the probe
        return f"failed ({type(e).__name__})"
    if err is None and not _marker_is(fs, marker, nonce):
        return "wrote its marker, but the driver does not see it: it is another disk"
    return err


def _marker_is(fs: pafs.FileSystem, path: str, nonce: str) -> bool:
    try:
        with fs.open_input_stream(path) as f:
            return bool(f.read().decode() == nonce)
    except OSError:
        return False
