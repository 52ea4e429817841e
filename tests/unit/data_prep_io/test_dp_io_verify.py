"""`python -m data_prep verify`: passes a good set, names each bad shard and exits 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data_prep.cli import main
from tests.unit.data_prep_io.vz_toy_generators import make_toy_set

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def good_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "good"
    make_toy_set(out, num_pairs=30, pairs_per_shard=5, seed=2)
    return out


def _verify(path: Path, capsys) -> tuple[int, str]:
    code = main(["verify", str(path), "--workers", "1"])
    return code, capsys.readouterr().out


def test_good_set_passes(good_set: Path, capsys) -> None:
    code, out = _verify(good_set, capsys)
    assert code == 0, out
    assert out.strip() == "OK: 6 shards, 30 pairs read"


def test_truncated_shard_is_named(good_set: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "set"
    shutil.copytree(good_set, bad)
    shard = bad / "clevr-000003.tar"
    shard.write_bytes(shard.read_bytes()[:2500])
    code, out = _verify(bad, capsys)
    assert code == 1
    bad_lines = [line for line in out.splitlines() if line.startswith("BAD")]
    assert len(bad_lines) == 1
    assert bad_lines[0].startswith("BAD clevr-000003.tar: sha256")
    assert "FAILED (1 bad shards): 6 shards, 25 pairs read" in out


@pytest.mark.parametrize(
    ("defect", "index", "shard", "message"),
    [
        ("identical", 12, "clevr-000002.tar", "clevr_000000012: original and modified images are identical"),
        ("outside", 7, "clevr-000001.tar", "clevr_000000007: change box"),
        ("no_changes", 29, "clevr-000005.tar", "clevr_000000029: truth lists no changes"),
    ],
)  # fmt: skip
def test_bad_pair_is_named_with_its_shard(
    tmp_path: Path, capsys, defect: str, index: int, shard: str, message: str
) -> None:
    out_dir = tmp_path / defect
    opts = (f"defect={defect}", f"defect_index={index}")
    make_toy_set(out_dir, num_pairs=30, pairs_per_shard=5, seed=2, opts=opts)
    code, out = _verify(out_dir, capsys)
    assert code == 1
    bad_lines = [line for line in out.splitlines() if line.startswith("BAD")]
    assert len(bad_lines) == 1, out
    assert bad_lines[0].startswith(f"BAD {shard}: {message}")


def test_stray_shard_and_missing_manifest(good_set: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "set"
    shutil.copytree(good_set, bad)
    shutil.copy(bad / "clevr-000000.tar", bad / "clevr-000099.tar")
    code, out = _verify(bad, capsys)
    assert code == 1
    assert "BAD set: shards not in manifest.json: ['clevr-000099.tar']" in out
    (bad / "manifest.json").unlink()
    assert main(["verify", str(bad)]) == 2
    assert "not finalized" in capsys.readouterr().err


def test_preview_and_bench_commands(good_set: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    sheet = tmp_path / "sheet.png"
    assert main(["preview", str(good_set), "--out", str(sheet), "--num", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(sheet) as image:
        assert image.width >= 2 * 64 and image.height >= 3 * 48
    assert main(["preview", str(good_set), "--out", str(sheet), "--num", "0"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])  # dispatched to data_prep.bench with its own options
    assert exit_info.value.code == 0
    assert "python -m data_prep bench" in capsys.readouterr().out
