"""The storage probe each node runs before a sweep: what it reports for storage it shares with the driver,
for another disk, and for storage it cannot use. (The whole check across hosts: tests/cluster.)"""

from __future__ import annotations

import pytest

from pipelines.distributed.storage_check import _probe, check_storage_reachable


def test_a_node_on_the_same_storage_reads_the_drivers_marker_and_writes_its_own(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "driver").write_text("n0nce")
    assert _probe(str(tmp_path), "probe", "n0nce", "node-a") is None
    assert (tmp_path / "probe" / "node-a").read_text() == "n0nce"


def test_a_node_on_another_disk_says_so(tmp_path):
    why = _probe(str(tmp_path), "probe", "n0nce", "node-a")  # its own disk has no driver marker
    assert why is not None and "another disk" in why and f"{tmp_path}/probe/driver" in why
    assert not (tmp_path / "probe" / "node-a").exists()


def test_a_node_that_sees_another_marker_is_on_another_storage(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "driver").write_text("someone else's")
    assert "another storage" in (_probe(str(tmp_path), "probe", "n0nce", "node-a") or "")


def test_storage_a_node_cannot_use_is_reported_with_the_reason(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "driver").write_text("n0nce")
    (tmp_path / "probe" / "node-a").mkdir()  # a folder where its marker goes: the write fails
    why = _probe(str(tmp_path), "probe", "n0nce", "node-a")
    assert why is not None and why.startswith("cannot use it (")


@pytest.mark.ray
def test_a_one_node_cluster_needs_no_probe(ray_local, tmp_path):
    """One machine's own disk is the storage: nothing to ask, nothing written."""
    assert check_storage_reachable(str(tmp_path), {"CPU": 1.0}) == 0
    assert list(tmp_path.iterdir()) == []
