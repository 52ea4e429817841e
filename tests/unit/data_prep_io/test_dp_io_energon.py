"""The written set loads with megatron-energon (train and val splits) through its own API."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from tests.unit.data_prep_io.vz_toy_generators import make_toy_set
from vzero_nemo.data.tario import read_shard

pytestmark = pytest.mark.unit


def test_energon_reads_train_and_val(tmp_path: Path) -> None:
    from vzero_nemo.data.energon_loader import EnergonPairSample, energon_pair_loader

    out = tmp_path / "set"
    manifest = make_toy_set(
        out, num_pairs=60, pairs_per_shard=5, seed=4, val_fraction=0.1, energon=True
    )
    assert len(manifest.val) == 1 and len(manifest.train) == 11
    split = yaml.safe_load((out / ".nv-meta" / "split.yaml").read_text())
    assert split["split_parts"]["val"] == list(manifest.val)
    assert all((out / f"{s.name}.idx").is_file() for s in manifest.shards)

    def keys_of(names: tuple[str, ...]) -> set[str]:
        return {key for name in names for key, _ in read_shard(out / name)}

    val = list(energon_pair_loader(out, split="val"))
    assert sorted(s.__key__ for s in val) == sorted(keys_of(manifest.val))
    sample = val[0]
    assert isinstance(sample, EnergonPairSample)
    assert sample.original.mode == "RGB" and sample.original.size == (64, 48)
    assert sample.original.tobytes() != sample.modified.tobytes()
    assert sample.typed_truth().domain == "clevr" and sample.truth["generator"] == "toy@1"

    train_keys = keys_of(manifest.train)
    drawn = [s.__key__ for s in itertools.islice(energon_pair_loader(out, split="train"), 80)]
    assert len(drawn) == 80 and set(drawn) <= train_keys
    assert len(set(drawn)) > 40  # shuffled across shards, not one shard repeated
