"""Contact sheets: both images per row with every change box outlined in red."""

import numpy as np
import pytest
from PIL import Image

from data_prep.clevr import generate_pair as clevr_pair
from data_prep.preview import MIN_ROW_HEIGHT, make_contact_sheet

pytestmark = pytest.mark.unit


def _red(pixels):
    return (pixels[..., 0] > 200) & (pixels[..., 1] < 40) & (pixels[..., 2] < 40)


def test_sheet_outlines_boxes_on_both_images(tmp_path):
    samples = [clevr_pair(0, i) for i in range(3)]
    out = make_contact_sheet(samples, tmp_path / "deep" / "sheet.png", max_pairs=2)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    gap = 8
    # first row starts at (gap, gap); original at x=gap, modified after one more gap
    x0, y0, x1, _ = samples[0].truth.changes[0].box
    left_top = sheet[gap + y0, gap + x0 : gap + x1]
    right_top = sheet[gap + y0, gap + 320 + gap + x0 : gap + 320 + gap + x1]
    assert _red(left_top).mean() > 0.9 and _red(right_top).mean() > 0.9
    # two rows of 240 px images plus captions, not three
    assert 2 * 240 < sheet.shape[0] < 3 * 240
    assert sheet.shape[1] == 2 * 320 + 3 * gap


def test_small_images_are_enlarged(tmp_path):
    sample = clevr_pair(0, 0, layout="grid", width=48, height=48, cell_size=16)
    out = make_contact_sheet([sample], tmp_path / "grid.png")
    sheet = Image.open(out)
    scale = -(-MIN_ROW_HEIGHT // 48)
    assert sheet.width == 2 * 48 * scale + 3 * 8


def test_empty_input_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least one sample"):
        make_contact_sheet([], tmp_path / "x.png")
