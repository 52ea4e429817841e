"""Test tiers: every test carries exactly one tier marker (see pyproject.toml)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TIERS = (
    "unit", "distributed", "widths", "functional", "learning", "slurm", "gpu", "browser",
    "benchmarks",
)  # fmt: skip


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


sys.path.insert(0, str(Path(__file__).parent))  # tests/tiny_run.py for the run-based tiers


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """A small CLEVR grid shard set (generated once per session), or the one made earlier by
    `python tests/tiny_run.py DIR` and named by VZERO_TEST_SHARDS (a GPU node without
    data_prep's dependencies: see scripts/gpu_check.sh)."""
    from tiny_run import make_shards

    prebuilt = os.environ.get("VZERO_TEST_SHARDS")
    if prebuilt:
        if not (Path(prebuilt) / "manifest.json").is_file():
            raise pytest.UsageError(f"VZERO_TEST_SHARDS={prebuilt} holds no manifest.json")
        return Path(prebuilt)
    return make_shards(tmp_path_factory.mktemp("data") / "clevr")
