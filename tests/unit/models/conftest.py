"""Shared fixtures of the model tests: a one-process megatron parallel state (gloo, CPU)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

SEED = 1234


@pytest.fixture(scope="module")
def megatron_1proc() -> Iterator[None]:
    """TP = PP = DP = 1 over an in-process store; torn down after the module."""
    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    initialize_parallel(ParallelConfig(backend="gloo"), seed=SEED)
    yield
    destroy_parallel()


@pytest.fixture
def reseed(megatron_1proc) -> None:
    """Reset every RNG so a test's random init does not depend on test order."""
    from vzero_nemo.parallel import seed_all

    seed_all(SEED)
