"""PairReader: DP sharding, seeded shuffling, exact resume, corrupt-shard skipping, decoding."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.unit.data_prep_io.vz_toy_generators import make_toy_set
from vzero_nemo.data.reader import PairReader, plan_epoch
from vzero_nemo.data.tario import decode_png_pil, read_shard

pytestmark = pytest.mark.unit

NUM_PAIRS = 33  # 7 shards of 5 + a last one of 3: uneven on purpose


@pytest.fixture(scope="module")
def pair_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reader") / "set"
    make_toy_set(out, num_pairs=NUM_PAIRS, pairs_per_shard=5, seed=11)
    return out


def _keys(reader: PairReader) -> list[str]:
    return [pair.key for pair in reader]


ALL_KEYS = [f"clevr_{i:09d}" for i in range(NUM_PAIRS)]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_ranks_are_disjoint_and_complete_every_epoch(pair_set: Path, world_size: int) -> None:
    per_rank = [
        _keys(
            PairReader(pair_set, split="all", seed=5, rank=r, world_size=world_size, num_epochs=2)
        )
        for r in range(world_size)
    ]
    for epoch in range(2):
        sizes = [len(keys) // 2 for keys in per_rank]
        epoch_keys = [keys[epoch * n : (epoch + 1) * n] for keys, n in zip(per_rank, sizes)]
        flat = [k for keys in epoch_keys for k in keys]
        assert sorted(flat) == ALL_KEYS  # each pair exactly once across ranks
        assert max(sizes) - min(sizes) <= 1
    assert Counter(k for keys in per_rank for k in keys) == Counter({k: 2 for k in ALL_KEYS})


def test_plan_reads_only_overlapping_shards(pair_set: Path) -> None:
    reader = PairReader(pair_set, split="all")
    slices = plan_epoch(reader.shards, epoch=0, seed=0, shuffle=False, rank=1, world_size=3)
    # 33 pairs -> rank 1 reads positions [11, 22): shard 2 from 1, shard 3, shard 4 up to 2.
    assert [(s.name, s.start, s.stop) for s in slices] == [
        ("clevr-000002.tar", 1, 5),
        ("clevr-000003.tar", 0, 5),
        ("clevr-000004.tar", 0, 2),
    ]


def test_shuffle_is_seeded_and_changes_per_epoch(pair_set: Path) -> None:
    ordered = _keys(PairReader(pair_set, split="all", shuffle=False))
    assert ordered == ALL_KEYS
    two_epochs = _keys(PairReader(pair_set, split="all", seed=1, num_epochs=2))
    again = _keys(PairReader(pair_set, split="all", seed=1, num_epochs=2))
    other_seed = _keys(PairReader(pair_set, split="all", seed=2, num_epochs=2))
    assert two_epochs == again
    assert two_epochs != other_seed
    first, second = two_epochs[:NUM_PAIRS], two_epochs[NUM_PAIRS:]
    assert sorted(first) == sorted(second) == ALL_KEYS and first != second
    # The shuffle buffer mixes pairs of different shards (buffer_shards=4 by default).
    assert len({k[:-1] for k in first[:10]}) > 1


@pytest.mark.parametrize(("rank", "world_size"), [(0, 1), (1, 2)])
def test_resume_equals_uninterrupted_sequence(pair_set: Path, rank: int, world_size: int) -> None:
    def make() -> PairReader:
        return PairReader(pair_set, split="all", seed=3, rank=rank, world_size=world_size,
                          buffer_shards=2, num_epochs=3)  # fmt: skip

    full = _keys(make())
    assert len(full) == 3 * make().pairs_per_epoch()
    for cut in sorted(
        {0, 1, 4, 9, 10, 11, len(full) // 3, len(full) // 2, len(full) - 1, len(full)}
    ):
        reader = make()
        stream = iter(reader)
        head = [next(stream).key for _ in range(cut)]
        state = json.loads(json.dumps(reader.state_dict()))  # plain JSON round trip
        resumed = make()
        resumed.load_state_dict(state)
        assert head + _keys(resumed) == full, f"cut at {cut}"


def test_state_from_another_configuration_is_refused(pair_set: Path) -> None:
    state = PairReader(pair_set, split="all", world_size=2).state_dict()
    with pytest.raises(ValueError, match=r"world_size: saved 2 vs now 4"):
        PairReader(pair_set, split="all", world_size=4).load_state_dict(state)
    assert set(state) == {
        "version", "epoch", "shard_cursor", "sample_offset", "corrupt_shards",
        "num_corrupt_samples", "config",
    }  # fmt: skip


def test_corrupt_shard_is_skipped_with_warning(pair_set: Path, tmp_path: Path, caplog) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(pair_set, broken)
    shard = broken / "clevr-000002.tar"
    shard.write_bytes(shard.read_bytes()[:1500])  # truncated
    reader = PairReader(broken, split="all", seed=0)
    with caplog.at_level(logging.WARNING, logger="vzero_nemo.data.reader"):
        keys = _keys(reader)
    assert reader.num_corrupt_shards == 1
    assert sorted(keys) == [k for k in ALL_KEYS if not 10 <= int(k[-9:]) < 15]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt shard clevr-000002.tar" in warnings[0]
    assert reader.state_dict()["corrupt_shards"] == ["clevr-000002.tar"]


def test_undecodable_pair_is_skipped_and_counted(pair_set: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(pair_set, broken)
    shard = broken / "clevr-000001.tar"
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as tar:
        member = tar.getmember("clevr_000000007.original.png")
    data[member.offset_data + 20 : member.offset_data + 60] = bytes(40)  # break the PNG header
    shard.write_bytes(bytes(data))
    reader = PairReader(broken, split="all", verify_checksums=False)
    keys = _keys(reader)
    assert reader.num_corrupt_samples == 1 and reader.num_corrupt_shards == 0
    assert sorted(keys) == [k for k in ALL_KEYS if k != "clevr_000000007"]
    with_checksums = PairReader(broken, split="all")
    assert len(_keys(with_checksums)) == NUM_PAIRS - 5
    assert with_checksums.num_corrupt_shards == 1


def test_decoded_images_match_pillow(pair_set: Path) -> None:
    raw = dict(read_shard(pair_set / "clevr-000000.tar"))
    pil_pairs = list(PairReader(pair_set, split="all", shuffle=False, decode="pil"))[:5]
    numpy_pairs = list(PairReader(pair_set, split="all", shuffle=False, decode="numpy"))[:5]
    for pil_pair, np_pair in zip(pil_pairs, numpy_pairs, strict=True):
        reference = np.asarray(decode_png_pil(raw[pil_pair.key]["original.png"]))
        assert pil_pair.original.mode == "RGB" and pil_pair.original.size == (64, 48)
        assert np.array_equal(np.asarray(pil_pair.original), reference)
        assert np_pair.original.shape == (48, 64, 3) and np_pair.original.dtype == np.uint8
        assert np.array_equal(np_pair.original, reference)
        assert not np.array_equal(np_pair.original, np_pair.modified)
        assert pil_pair.truth.domain == "clevr" and pil_pair.shard == "clevr-000000.tar"


def test_train_and_val_splits_partition_the_set(tmp_path: Path) -> None:
    out = tmp_path / "split"
    manifest = make_toy_set(out, num_pairs=40, pairs_per_shard=4, seed=0, val_fraction=0.2)
    train = _keys(PairReader(out, split="train"))
    val = _keys(PairReader(out, split="val"))
    assert len(val) == 2 * 4 and len(train) == 8 * 4
    assert not set(train) & set(val)
    assert sorted(train + val) == [f"clevr_{i:09d}" for i in range(40)]
    assert {p.shard for p in PairReader(out, split="val")} == set(manifest.val)


def test_bad_arguments(pair_set: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        PairReader(pair_set, rank=2, world_size=2)
    with pytest.raises(ValueError, match="decode must be one of"):
        PairReader(pair_set, decode="jpeg")
    with pytest.raises(ValueError, match="split 'val' .* has no shards"):
        PairReader(pair_set, split="val")
    with pytest.raises(ValueError, match="not finalized"):
        PairReader(tmp_path)


def test_bench_reader_reads_every_pair(pair_set: Path, capsys) -> None:
    import os

    from vzero_nemo.data.bench_reader import main

    affinity = os.sched_getaffinity(0)
    try:
        assert main([str(pair_set)]) == 0
    finally:
        os.sched_setaffinity(0, affinity)  # the bench pins this process to one core
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == NUM_PAIRS and result["cores"] == 1
    assert result["image_size"] == [64, 48] and result["pairs_per_s"] > 0
