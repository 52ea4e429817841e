"""The domain registry the shard writer uses."""

import dataclasses

import pytest

from data_prep.generators import GENERATORS, OPTIONS
from vzero_nemo.data.schema import DOMAINS, PairSample

pytestmark = pytest.mark.unit


def test_registry_covers_every_domain():
    assert set(GENERATORS) == set(OPTIONS) == set(DOMAINS)
    for options_cls in OPTIONS.values():
        assert dataclasses.is_dataclass(options_cls)
        options_cls()  # defaults are valid


@pytest.mark.parametrize("domain", DOMAINS)
def test_generators_follow_the_contract(domain):
    sample = GENERATORS[domain](11, 2)
    assert isinstance(sample, PairSample)
    assert sample.key == f"{domain}-11-00000002"
    assert sample.truth.domain == domain and sample.truth.seed == 11
    assert sample.truth.generator.startswith(f"{domain}-") and "@" in sample.truth.generator
    assert sample.original_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sample.original_png != sample.modified_png
    assert len(sample.truth.changes) >= 1
    back = PairSample.from_members(sample.key, sample.members())
    assert back == sample
