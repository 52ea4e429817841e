"""Fixtures shared by unit tests."""

from __future__ import annotations

import logging
import os
import warnings

import pytest

from vzero_nemo import logs


@pytest.fixture
def process_state():
    """Commands route logs (`vzero_nemo.logs.configure`) by changing the environment, the
    root logger and the warning filters of their process; put them back afterwards."""
    env, root = dict(os.environ), logging.getLogger()
    handlers, level, state = root.handlers[:], root.level, dict(logs._STATE)
    with warnings.catch_warnings():
        yield
    os.environ.clear()
    os.environ.update(env)
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._STATE.clear()
    logs._STATE.update(state)
