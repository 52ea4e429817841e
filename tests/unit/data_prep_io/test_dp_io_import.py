"""`python -m data_prep import --layout vision-zero`: pairs, scene JSON, diff boxes, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep.cli import main
from data_prep.importer import diff_boxes
from vzero_nemo.data.manifest import load_manifest
from vzero_nemo.data.schema import PairSample
from vzero_nemo.data.tario import read_shard

pytestmark = pytest.mark.unit

WIDTH, HEIGHT = 40, 30


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _pair(i: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """A noisy background; the modified image repaints one or two rectangles."""
    rng = np.random.default_rng(i)
    original = rng.integers(0, 200, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    modified = original.copy()
    boxes = [(2 + i % 5, 3, 9 + i % 5, 8)]
    if i % 2:
        boxes.append((25, 18, 31, 27))
    for x0, y0, x1, y1 in boxes:
        modified[y0:y1, x0:x1] = 255
    return original, modified, boxes


def _write_layout(src: Path, num_pairs: int) -> dict[str, list[tuple[int, int, int, int]]]:
    src.mkdir()
    expected = {}
    for i in range(num_pairs):
        base = f"CLEVR_new_{i:06d}"
        original, modified, boxes = _pair(i)
        (src / f"{base}_original.png").write_bytes(_png(original))
        (src / f"{base}_modified.png").write_bytes(_png(modified))
        if i % 3 == 0:
            (src / f"{base}.json").write_text(json.dumps({"objects": [{"color": "red", "i": i}]}))
        expected[base] = boxes
    return expected


def test_import_official_layout(tmp_path: Path, capsys) -> None:
    src = tmp_path / "images"
    expected = _write_layout(src, 11)
    (src / "lonely_original.png").write_bytes((src / "CLEVR_new_000000_original.png").read_bytes())
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "set"
    args = ["import", "--layout", "vision-zero", str(src), "--out", str(out),
            "--pairs-per-shard", "4", "--val-fraction", "0", "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 files form no vision-zero pair:" in err
    assert "  lonely_original.png" in err and "  notes.txt" in err
    assert not out.exists()

    assert main(args + ["--allow-unmatched"]) == 0
    manifest = load_manifest(out)
    assert manifest.counts == {"real": 11}
    assert [s.name for s in manifest.shards] == [
        "real-000000.tar",
        "real-000001.tar",
        "real-000002.tar",
    ]
    assert manifest.runs["real"]["source"] == "import"
    assert manifest.runs["real"]["generator"] == "import-vision-zero@1"
    samples = [
        PairSample.from_members(key, members)
        for entry in manifest.shards
        for key, members in read_shard(out / entry.name)
    ]
    assert [s.key for s in samples] == [f"real_{i:09d}" for i in range(11)]
    for sample, (base, boxes) in zip(samples, sorted(expected.items()), strict=True):
        assert sample.original_png == (src / f"{base}_original.png").read_bytes()
        assert sample.modified_png == (src / f"{base}_modified.png").read_bytes()
        assert sample.truth.domain == "real"
        assert sample.truth.original["source"] == base
        assert (sample.truth.original["width"], sample.truth.original["height"]) == (WIDTH, HEIGHT)
        assert [c.box for c in sample.truth.changes] == sorted(boxes, key=lambda b: (b[1], b[0]))
        assert {c.kind for c in sample.truth.changes} == {"pixel_diff"}
        has_scene = int(base[-6:]) % 3 == 0
        assert ("scene" in sample.truth.original) == has_scene
        if has_scene:
            assert sample.truth.original["scene"]["objects"][0]["i"] == int(base[-6:])
    assert main(["verify", str(out), "--workers", "1"]) == 0


def test_scenes_folder_and_domain(tmp_path: Path) -> None:
    src = tmp_path / "images"
    _write_layout(src, 3)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for path in src.glob("*.json"):
        path.rename(scenes / path.name)
    out = tmp_path / "set"
    code = main(["import", "--layout", "vision-zero", str(src), "--scenes", str(scenes),
                 "--domain", "clevr", "--out", str(out), "--val-fraction", "0", "--workers", "1"])  # fmt: skip
    assert code == 0
    key, members = read_shard(out / "clevr-000000.tar")[0]
    sample = PairSample.from_members(key, members)
    assert sample.truth.domain == "clevr"
    assert sample.truth.original["scene"] == {"objects": [{"color": "red", "i": 0}]}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("identical", "CLEVR_new_000001: original and modified show no difference"),
        ("resized", "CLEVR_new_000001_original.png is 40x30 but CLEVR_new_000001_modified.png is 20x30"),
        ("garbage", "CLEVR_new_000001: a PNG of the pair does not decode"),
    ],
)  # fmt: skip
def test_bad_pairs_stop_the_import(tmp_path: Path, capsys, damage: str, message: str) -> None:
    src = tmp_path / "images"
    _write_layout(src, 3)
    target = src / "CLEVR_new_000001_modified.png"
    if damage == "identical":
        target.write_bytes((src / "CLEVR_new_000001_original.png").read_bytes())
    elif damage == "resized":
        target.write_bytes(_png(np.zeros((HEIGHT, WIDTH // 2, 3), dtype=np.uint8)))
    else:
        target.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = main(["import", "--layout", "vision-zero", str(src), "--out", str(tmp_path / "o"),
                 "--val-fraction", "0", "--workers", "1"])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_diff_boxes_threshold_and_noise() -> None:
    original = np.zeros((20, 30, 3), dtype=np.uint8)
    modified = original.copy()
    modified[2:6, 3:9] = 200  # a real change
    modified[15, 25] = 200  # one stray pixel: below min_box_area
    modified[10:12, 10:12] = 3  # faint: below the threshold
    boxes = diff_boxes(original, modified, diff_threshold=5, merge_px=1, min_box_area=4)
    assert boxes == [(3, 2, 9, 6)]
    assert diff_boxes(original, modified, diff_threshold=0, merge_px=0, min_box_area=1) == [
        (3, 2, 9, 6),
        (10, 10, 12, 12),
        (25, 15, 26, 16),
    ]
