"""Distributed tier: multi-process gloo runs on loopback (see _launch.py)."""

from __future__ import annotations

import pytest
from _launch import launch_workers


@pytest.fixture(scope="session")
def launch():
    """`launch(script, nproc, args, log_dir, timeout_s=...)`: run ranks, raise on failure."""
    return launch_workers
