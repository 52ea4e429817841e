"""Real-photo pairs: every edit kind is visible and boxed, user folders, bundled photos."""

import numpy as np
import pytest
from PIL import Image

from data_prep.imaging import decode_png, diff_mask
from data_prep.real import RealOptions, generate_pair
from data_prep.real.generate import EDIT_KINDS
from data_prep.real.photos import bundled_photos

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_each_edit_kind_changes_only_its_box(kind):
    for index in range(3):
        sample = generate_pair(0, index, edit_kinds=(kind,))
        img0, img1 = decode_png(sample.original_png), decode_png(sample.modified_png)
        assert img0.shape == (240, 320, 3)
        (change,) = sample.truth.changes
        assert change.kind == kind
        x0, y0, x1, y1 = change.box
        changed = diff_mask(img0, img1)
        assert changed.sum() == changed[y0:y1, x0:x1].sum() > 0
        delta = np.abs(img0[y0:y1, x0:x1].astype(int) - img1[y0:y1, x0:x1]).mean()
        assert delta >= 10.0 * (0.5 if kind == "move" else 1.0)


def test_deterministic_and_records_source():
    a, b = generate_pair(1, 4), generate_pair(1, 4)
    assert a.key == "real-1-00000004"
    assert (a.original_png, a.modified_png) == (b.original_png, b.modified_png)
    names = {name for name, _ in bundled_photos()}
    desc = a.truth.original
    assert desc["source"] in names
    assert (desc["width"], desc["height"]) == (320, 240)
    assert generate_pair(1, 5).original_png != a.original_png


def test_bundled_photos_are_local_files():
    photos = bundled_photos()
    assert len(photos) >= 8
    assert all(path.is_file() for _, path in photos)
    assert {"skimage/astronaut", "sklearn/china", "matplotlib/grace_hopper"} <= {
        name for name, _ in photos
    }


def _write_photos(folder, count):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        yy, xx = np.mgrid[0:180, 0:260]
        img = np.stack([xx % 256, yy % 256, (xx * yy) % 256], axis=-1).astype(np.uint8)
        img[rng.integers(0, 100) :][:60, 40:120] = rng.integers(0, 255, size=3)
        Image.fromarray(img).save(folder / f"photo_{i}.png")


def test_user_folder_of_pngs(tmp_path):
    _write_photos(tmp_path / "photos" / "sub", 3)
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    sample = generate_pair(0, 0, photo_dir=str(tmp_path / "photos"), width=128, height=96)
    assert sample.truth.original["source"] in {f"sub/photo_{i}.png" for i in range(3)}
    assert decode_png(sample.modified_png).shape == (96, 128, 3)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        generate_pair(0, 0, photo_dir=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no photos"):
        generate_pair(0, 0, photo_dir=str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"edit_kinds": ("blur",)}, "edit_kinds"),
        ({"min_region": 0.3, "max_region": 0.2}, "min_region <= max_region"),
        ({"width": 16}, "too small"),
        ({"min_mean_diff": 0}, "min_mean_diff=0"),
    ],
)
def test_option_errors_name_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        RealOptions(**options)
