"""Test tiers: every test carries exactly one tier marker (see pyproject.toml)."""

from __future__ import annotations

import pytest

TIERS = ("unit", "distributed", "functional", "slurm", "gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(
            "tests without a tier marker (" + ", ".join(TIERS) + "): " + ", ".join(untiered[:5])
        )
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA (gpu tier)")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)
