"""Chart pairs: every type draws, edits are visible and boxed, invisible edits are rejected."""

import numpy as np
import pytest

from data_prep.chart import ChartOptions, generate_pair
from data_prep.chart.generate import pick_visible_change, visible_change
from data_prep.chart.render import render_chart
from data_prep.chart.spec import CHART_TYPES, apply_change, random_spec
from data_prep.imaging import decode_png, diff_mask

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("chart_type", CHART_TYPES)
def test_each_chart_type_renders_a_boxed_visible_change(chart_type):
    sample = generate_pair(0, 1, chart_types=(chart_type,))
    truth = sample.truth
    assert truth.original["type"] == chart_type == truth.modified["type"]
    img0, img1 = decode_png(sample.original_png), decode_png(sample.modified_png)
    assert img0.shape == (240, 320, 3)
    assert (img0 < 128).any(axis=2).sum() > 500  # axes, text and marks were drawn
    (change,) = truth.changes
    x0, y0, x1, y1 = change.box
    changed = diff_mask(img0, img1)
    assert changed[y0:y1, x0:x1].sum() == changed.sum() > 0
    assert diff_mask(img0, img1, 24).sum() >= 30
    assert truth.original != truth.modified


def test_change_records_match_the_specs():
    for index in range(12):
        truth = generate_pair(3, index).truth
        (change,) = truth.changes
        s0, s1 = truth.original, truth.modified
        if change.kind == "swap_values":
            a, b = change.before
            assert change.before[a] == change.after[b] and change.before[b] == change.after[a]
        elif change.kind == "swap_colors":
            assert s0["point_colors"] != s1["point_colors"] or s0["series"] != s1["series"]
            assert sorted(change.before.values()) == sorted(change.after.values())
        else:
            assert change.kind == "change_value"
            (label,) = change.before
            assert change.before[label] != change.after[label]


def test_deterministic_bytes():
    a, b = generate_pair(4, 2), generate_pair(4, 2)
    assert a.key == "chart-4-00000002"
    assert (a.original_png, a.modified_png) == (b.original_png, b.modified_png)
    assert a.truth.to_json() == b.truth.to_json()
    assert generate_pair(4, 3).original_png != a.original_png


def _flat_bar_spec():
    spec = random_spec(np.random.default_rng(0), "bar", 4, 4)
    spec["series"][0]["values"] = [30, 30, 30, 30]
    spec["point_colors"] = ["#1f77b4"] * 4
    spec["show_values"] = True
    return spec


def test_invisible_edits_are_rejected():
    spec = _flat_bar_spec()
    opts = ChartOptions()
    img0 = render_chart(spec, opts.width, opts.height, opts.dpi)
    rng = np.random.default_rng(1)
    swapped, _ = apply_change(spec, "swap_values", rng)
    assert visible_change(img0, render_chart(swapped, 320, 240, 100), 30) is None
    # equal values and equal colours: no swap can show, so every try is rejected
    only_swaps = ChartOptions(change_kinds=("swap_values", "swap_colors"), max_change_tries=5)
    assert pick_visible_change(spec, img0, rng, only_swaps) is None
    picked = pick_visible_change(spec, img0, rng, ChartOptions(change_kinds=("change_value",)))
    assert picked is not None
    new_spec, img1, change = picked
    assert change.kind == "change_value"
    assert diff_mask(img0, img1, 24).sum() >= 30


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chart_types": ("donut",)}, "chart_types"),
        ({"change_kinds": ("recolor",)}, "change_kinds"),
        ({"min_categories": 6, "max_categories": 3}, "min_categories <= max_categories"),
        ({"width": 100}, "too small"),
        ({"dpi": 10}, "dpi=10"),
    ],
)
def test_option_errors_name_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        ChartOptions(**options)
