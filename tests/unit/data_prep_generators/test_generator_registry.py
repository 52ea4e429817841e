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


def test_same_bytes_in_a_fresh_process():
    """A worker's first pair equals the pair made after others (no state leaks between pairs)."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import hashlib\n"
        "from data_prep.generators import GENERATORS\n"
        "for d in ('clevr', 'chart', 'real'):\n"
        "    s = GENERATORS[d](21, 4)\n"
        "    print(hashlib.sha256(s.original_png + s.modified_png).hexdigest())\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    here = []
    for domain in ("clevr", "chart", "real"):
        for index in range(3):  # warm the per-process caches and the reused figure
            GENERATORS[domain](22, index)
        sample = GENERATORS[domain](21, 4)
        here.append(hashlib.sha256(sample.original_png + sample.modified_png).hexdigest())
    assert fresh == here
