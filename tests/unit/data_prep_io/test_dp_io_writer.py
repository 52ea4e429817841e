"""Shard writer: determinism, atomic resume (incl. a killed `python -m data_prep generate`),
shard ranges merged by finalize, the train/val split rule and CLI input errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from data_prep.cli import main
from data_prep.finalize import choose_splits, finalize, missing_shards
from data_prep.shards import PARTS_DIR, RunSpec, shard_name, write_shards
from data_prep.sources import make_generator_source
from tests.unit.data_prep_io.vz_toy_generators import TOY_MODULE, generate_toy_pair, make_toy_set
from vzero_nemo.data.manifest import MANIFEST_FILE, ShardEntry, load_manifest
from vzero_nemo.data.tario import read_shard

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def _shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.tar"))}


def _all_keys(directory: Path) -> list[str]:
    return [key for p in sorted(directory.glob("*.tar")) for key, _ in read_shard(p)]


def _run(domain_seed: int = 0, num_pairs: int = 60, pairs_per_shard: int = 5, opts=()):
    source, arguments = make_generator_source(TOY_MODULE, "clevr", domain_seed, list(opts))
    return RunSpec("clevr", num_pairs, pairs_per_shard, arguments), source


def test_same_arguments_give_identical_bytes_and_fixed_headers(tmp_path: Path) -> None:
    a = make_toy_set(tmp_path / "a", num_pairs=23, pairs_per_shard=5, seed=3)
    b = make_toy_set(tmp_path / "b", num_pairs=23, pairs_per_shard=5, seed=3)
    assert _shard_bytes(tmp_path / "a") == _shard_bytes(tmp_path / "b")
    assert (tmp_path / "a" / MANIFEST_FILE).read_bytes() == (
        tmp_path / "b" / MANIFEST_FILE
    ).read_bytes()
    assert [s.num_samples for s in a.shards] == [5, 5, 5, 5, 3]
    assert a.counts == b.counts == {"clevr": 23}
    with tarfile.open(tmp_path / "a" / "clevr-000004.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == [
        "clevr_000000020.json",
        "clevr_000000020.modified.png",
        "clevr_000000020.original.png",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {
        (0, 0, 0, "vzero", 0o644)
    }
    # Pair i of the set is generate_pair(seed, i).
    key, members_22 = read_shard(tmp_path / "a" / "clevr-000004.tar")[2]
    expected = generate_toy_pair(3, 22)
    assert key == "clevr_000000022"
    assert members_22["original.png"] == expected.original_png
    assert members_22["json"] == expected.truth.to_json()
    other_seed = make_toy_set(tmp_path / "c", num_pairs=23, pairs_per_shard=5, seed=4)
    assert other_seed.shards[0].sha256 != a.shards[0].sha256


def test_cli_with_worker_processes_matches_in_process_bytes(tmp_path: Path) -> None:
    make_toy_set(tmp_path / "ref", num_pairs=24, pairs_per_shard=4, seed=1)
    cmd = [sys.executable, "-m", "data_prep", "generate", "--generators", TOY_MODULE,
           "--domain", "clevr", "--num-pairs", "24", "--pairs-per-shard", "4", "--seed", "1",
           "--out", str(tmp_path / "cli"), "--workers", "2", "--val-fraction", "0", "--no-energon"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 6 shards, 0 already complete" in done.stdout
    assert "finalized" in done.stdout
    assert _shard_bytes(tmp_path / "cli") == _shard_bytes(tmp_path / "ref")
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "wrote 0 shards, 6 already complete" in again.stdout


def test_killed_generate_resumes_without_duplicate_or_missing_keys(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "data_prep", "generate", "--generators", TOY_MODULE,
           "--domain", "clevr", "--num-pairs", "60", "--pairs-per-shard", "5", "--seed", "7",
           "--out", str(out), "--workers", "1", "--val-fraction", "0", "--no-progress",
           "--no-energon", "--opt", "delay_s=0.03"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    parts = out / PARTS_DIR
    while time.monotonic() < deadline:
        if parts.is_dir() and len(list(parts.glob("*.json"))) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    num_parts = len(list(parts.glob("*.json")))
    assert 3 <= num_parts < 12, "the kill should land mid-run"
    assert not (out / MANIFEST_FILE).exists()
    # The killed shard left no tar under its final name, only (maybe) a hidden temp file.
    assert len(list(out.glob("*.tar"))) == num_parts

    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {12 - num_parts} shards, {num_parts} already complete" in done.stdout
    keys = _all_keys(out)
    assert keys == [f"clevr_{i:09d}" for i in range(60)]
    assert not list(out.glob(".*.tmp"))
    # The delay option does not change the pairs: same shards as an uninterrupted run.
    reference = make_toy_set(tmp_path / "ref", num_pairs=60, pairs_per_shard=5, seed=7)
    assert load_manifest(out).shards == reference.shards


def test_rerun_rewrites_truncated_partial_and_tampered_shards(tmp_path: Path) -> None:
    out = tmp_path / "set"
    run, source = _run()
    write_shards(out, run, source, progress=False)
    reference = _shard_bytes(out)
    truncated = out / shard_name("clevr", 2)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    (out / PARTS_DIR / f"{shard_name('clevr', 5)}.json").unlink()  # killed before its part
    tampered = bytearray((out / shard_name("clevr", 9)).read_bytes())
    tampered[700] ^= 0xFF  # same size, different checksum
    (out / shard_name("clevr", 9)).write_bytes(bytes(tampered))
    stale = out / f".{shard_name('clevr', 7)}.12345.tmp"
    stale.write_bytes(b"half a shard")
    (out / shard_name("clevr", 7)).unlink()
    (out / PARTS_DIR / f"{shard_name('clevr', 7)}.json").unlink()

    report = write_shards(out, run, source, progress=False)
    assert (report.num_written, report.num_skipped) == (4, 8)
    assert sorted(p.shard_index for p in report.parts) == list(range(12))
    assert _shard_bytes(out) == reference
    assert not stale.exists()


def test_shard_ranges_write_disjoint_parts_and_finalize_merges_them(tmp_path: Path) -> None:
    out = tmp_path / "ranges"
    run, source = _run(num_pairs=57, pairs_per_shard=5)
    write_shards(out, run, source, shard_range=range(6, 12), progress=False)
    assert missing_shards(out) == [shard_name("clevr", i) for i in range(6)]
    with pytest.raises(ValueError, match="6 shards are not written yet"):
        finalize(out, val_fraction=0.0)
    write_shards(out, run, source, shard_range=range(0, 6), progress=False)
    assert missing_shards(out) == []
    merged = finalize(out, val_fraction=0.1, energon=False)
    whole = make_toy_set(tmp_path / "whole", num_pairs=57, pairs_per_shard=5, val_fraction=0.1)
    assert merged == whole
    assert merged.num_pairs == 57 and len(merged.val) == 1 and len(merged.train) == 11


def test_folder_with_another_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "set"
    run, source = _run(domain_seed=1, num_pairs=10)
    write_shards(out, run, source, progress=False)
    other, other_source = _run(domain_seed=2, num_pairs=10)
    with pytest.raises(ValueError, match=r"seed: 1 -> 2"):
        write_shards(out, other, other_source, progress=False)


def test_split_is_per_domain_and_refuses_an_empty_val() -> None:
    def entries(domain: str, n: int) -> list[ShardEntry]:
        return [
            ShardEntry(shard_name(domain, i), domain, 5, 5 * i, "0" * 64, "g@1") for i in range(n)
        ]

    train, val = choose_splits(entries("clevr", 20) + entries("chart", 10), 0.1, split_seed=0)
    assert len(val) == 3 and len(train) == 27 and not set(train) & set(val)
    assert sum(v.startswith("chart") for v in val) == 1
    assert choose_splits(entries("clevr", 20), 0.1, 0) != choose_splits(
        entries("clevr", 20), 0.1, 1
    )
    assert choose_splits(entries("clevr", 4), 0.0, 0) == (
        tuple(e.name for e in entries("clevr", 4)),
        (),
    )
    with pytest.raises(ValueError, match=r"clevr: 4 shards .* gives 0 val .* --val-fraction 0"):
        choose_splits(entries("clevr", 4), 0.1, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        choose_splits(entries("clevr", 20), 1.0, 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-pairs", "0"], "--num-pairs must be > 0, got 0"),
        (["--num-pairs", "-4"], "--num-pairs must be > 0, got -4"),
        (["--pairs-per-shard", "0"], "--pairs-per-shard must be > 0"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--shard-range", "3:2"], "outside 0:2"),
        (["--shard-range", "0:9"], "outside 0:2"),
        (["--shard-range", "one"], "must look like A:B"),
        (["--opt", "colour=red"], "unknown option 'colour' for ToyOptions"),
        (["--opt", "num_shapes=many"], "--opt num_shapes='many': expected int"),
        (["--opt", "num_shapes=0"], "num_shapes must be >= 1"),
        (["--opt", "width"], "must look like key=value"),
        (["--generators", "no_such_module_xyz"], "cannot import generators module"),
    ],
)
def test_cli_rejects_bad_input(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    args = ["generate", "--generators", TOY_MODULE, "--domain", "clevr", "--num-pairs", "10",
            "--pairs-per-shard", "5", "--seed", "0", "--out", str(tmp_path / "o"), "--workers", "1"]  # fmt: skip
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_unknown_domain_and_out_file(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--domain", "cats", "--num-pairs", "4", "--seed", "0", "--out", "x"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cats'" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    code = main(["generate", "--generators", TOY_MODULE, "--domain", "clevr", "--num-pairs", "4",
                 "--seed", "0", "--out", str(afile)])  # fmt: skip
    assert code == 2
    assert "exists and is a file" in capsys.readouterr().err
    # A domain the generators module lacks.
    code = main(["generate", "--generators", TOY_MODULE, "--domain", "chart", "--num-pairs", "4",
                 "--seed", "0", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert "unknown domain 'chart'" in capsys.readouterr().err


def test_manifest_records_arguments_and_checksums(tmp_path: Path) -> None:
    manifest = make_toy_set(tmp_path / "m", num_pairs=12, pairs_per_shard=4, seed=5,
                            opts=("num_shapes=2",))  # fmt: skip
    raw = json.loads((tmp_path / "m" / MANIFEST_FILE).read_text())
    run = raw["runs"]["clevr"]
    assert run["seed"] == 5 and run["num_pairs"] == 12 and run["pairs_per_shard"] == 4
    assert run["options"]["num_shapes"] == 2 and run["generator"] == "toy@1"
    assert raw["counts"] == {"clevr": 12} and raw["schema_version"] == 1
    for entry in manifest.shards:
        assert (
            hashlib.sha256((tmp_path / "m" / entry.name).read_bytes()).hexdigest() == entry.sha256
        )
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "m" / manifest.shards[0].name).st_mode & 0o777 == 0o666 & ~umask


def test_generate_rejects_an_impossible_split_before_writing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    code = main(["generate", "--generators", TOY_MODULE, "--domain", "clevr", "--num-pairs", "40",
                 "--seed", "0", "--pairs-per-shard", "20", "--val-fraction", "0.2",
                 "--out", str(out), "--workers", "1", "--no-progress"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--val-fraction 0.2" in err and "--pairs-per-shard 20" in err
    assert not out.exists()
