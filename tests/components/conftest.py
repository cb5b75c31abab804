"""Device fixtures for the component tests: a default device that catches slips, and the cuda marker.

``meta_default_device``: while it is active every tensor created without an explicit device lands on
the meta device, where it has no data, so a trainer built with ``train.device: cpu`` that creates
anything on torch's default device fails at once (mixing devices, or reading a meta tensor).

Tests marked ``@pytest.mark.cuda`` are skipped where torch sees no GPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def meta_default_device() -> Iterator[None]:
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        yield
    finally:  # None, not "cpu": a CPU default would leave a device mode on every later factory call
        torch.set_default_device(None if before == torch.device("cpu") else before)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch sees none")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
