"""Published-width tier: random checkpoints at the 7B / 72B widths, multi-process runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "distributed"))

from _launch import launch_workers  # noqa: E402


@pytest.fixture(scope="session")
def launch():
    """`launch(script, nproc, args, log_dir, timeout_s=...)`: run ranks, raise on failure."""
    return launch_workers
