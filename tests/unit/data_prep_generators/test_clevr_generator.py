"""CLEVR-style pairs: determinism, scene validity, edits and where the pixels change."""

import math
import shutil

import numpy as np
import pytest

from data_prep.clevr import ClevrOptions, generate_pair
from data_prep.clevr.generate import sample_pair_scenes, stage_for
from data_prep.clevr.render import COLOR_RGB, render
from data_prep.clevr.scene import MIN_GAP
from data_prep.imaging import decode_png, diff_mask
from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_SHAPES, PairSample

pytestmark = pytest.mark.unit

GRID = {"layout": "grid", "width": 48, "height": 48, "cell_size": 16}


def _outside_boxes_mask(shape, boxes):
    outside = np.ones(shape[:2], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    return outside


def test_deterministic_bytes_and_key():
    a, b = generate_pair(5, 3), generate_pair(5, 3)
    assert a.key == "clevr-5-00000003"
    assert a.original_png == b.original_png and a.modified_png == b.modified_png
    assert a.truth.to_json() == b.truth.to_json()
    c = generate_pair(5, 4)
    assert c.original_png != a.original_png


@pytest.mark.parametrize("options", [{}, GRID], ids=["free", "grid"])
def test_scene_graph_and_changes(options):
    for index in range(6):
        sample = generate_pair(1, index, **options)
        truth = sample.truth
        objs0, objs1 = truth.original["objects"], truth.modified["objects"]
        assert 4 <= len(objs0) <= 6 and len(objs1) == len(objs0)
        assert all(o["visible_fraction"] >= 0.5 for o in objs0 + objs1)
        assert len(truth.changes) == 2
        changed = {c.target for c in truth.changes}
        for o0, o1 in zip(objs0, objs1, strict=True):
            assert o0["id"] == o1["id"]
            if o0["id"] in changed:
                assert o0["color"] != o1["color"] and o0["shape"] != o1["shape"]
                assert o0["material"] == o1["material"] and o0["size"] == o1["size"]
                assert o0["cell"] == o1["cell"]
                if options.get("layout") != "grid":  # same floor position
                    assert o0["position_3d"][:2] == o1["position_3d"][:2]
            else:
                assert o0 == {**o1, "visible_fraction": o0["visible_fraction"]}
        for change in truth.changes:
            assert change.kind == "recolor_reshape"
            assert change.before["color"] in CLEVR_COLORS
            assert change.after["shape"] in CLEVR_SHAPES


def test_footprints_do_not_overlap():
    for index in range(10):
        objs = generate_pair(2, index).truth.original["objects"]
        radius = {"large": 0.7, "small": 0.35}
        for i, a in enumerate(objs):
            for b in objs[i + 1 :]:
                gap = math.dist(a["position_3d"][:2], b["position_3d"][:2])
                assert gap >= radius[a["size"]] + radius[b["size"]] + MIN_GAP - 1e-3


@pytest.mark.parametrize("options", [{}, GRID], ids=["free", "grid"])
def test_pixels_change_only_inside_change_boxes(options):
    for index in range(6):
        sample = generate_pair(3, index, **options)
        img0, img1 = decode_png(sample.original_png), decode_png(sample.modified_png)
        assert img0.shape == (sample.truth.original["height"], sample.truth.original["width"], 3)
        changed = diff_mask(img0, img1)
        boxes = [c.box for c in sample.truth.changes]
        assert not changed[_outside_boxes_mask(img0.shape, boxes)].any()
        for x0, y0, x1, y1 in boxes:
            assert changed[y0:y1, x0:x1].sum() >= 0.2 * (x1 - x0) * (y1 - y0)


def _chromaticity(rgb):
    rgb = np.asarray(rgb, dtype=float) + 1.0
    return rgb / rgb.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("options", [{}, GRID], ids=["free", "grid"])
def test_each_object_shows_its_own_colour(options):
    """Rubber objects' visible pixels have the chromaticity of their CLEVR colour."""
    opts = ClevrOptions(**options)
    stage = stage_for(opts)
    names = list(COLOR_RGB)
    palette = _chromaticity([COLOR_RGB[n] for n in names])
    checked = 0
    for index in range(8):
        scene, modified, _, _, _ = sample_pair_scenes(4, index, opts)
        for objects in (scene, modified):
            img = render(stage, [o.body() for o in objects], opts.supersample)
            for k, obj in enumerate(objects):
                pixels = img.rgb_HW3[img.ids_HW == k]
                assert len(pixels) >= 0.001 * opts.width * opts.height
                if obj.material != "rubber":
                    continue
                median = _chromaticity(np.median(pixels, axis=0))
                nearest = names[int(np.abs(palette - median).sum(axis=1).argmin())]
                assert nearest == obj.color
                checked += 1
    assert checked >= 10


def test_grid_cells_unique_and_aligned():
    for index in range(8):
        truth = generate_pair(6, index, **GRID).truth
        for graph in (truth.original, truth.modified):
            cells = [tuple(o["cell"]) for o in graph["objects"]]
            assert len(set(cells)) == len(cells)
            for obj in graph["objects"]:
                row, col = obj["cell"]
                assert 0 <= row < 3 and 0 <= col < 3
                x0, y0, x1, y1 = obj["box"]
                assert col * 16 <= x0 and x1 <= (col + 1) * 16
                assert row * 16 <= y0 and y1 <= (row + 1) * 16
                assert abs(obj["center"][0] - (col + 0.5) * 16) < 0.01
                assert abs(obj["center"][1] - (row + 0.5) * 16) < 0.01
                assert (x1 - x0) >= 8 or (y1 - y0) >= 8  # fills a good part of the cell


def test_configurable_counts_and_attributes():
    sample = generate_pair(
        0, 1, min_objects=3, max_objects=3, num_changes=1, change_attributes=["material", "size"]
    )
    truth = sample.truth
    assert len(truth.original["objects"]) == 3
    (change,) = truth.changes
    assert change.kind == "rematerial_resize"
    assert set(change.before) == {"material", "size"}
    assert change.before["material"] != change.after["material"]
    assert change.before["size"] != change.after["size"]
    big = generate_pair(0, 2, width=480, height=320)
    assert decode_png(big.original_png).shape == (320, 480, 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_objects": 5, "max_objects": 4}, "min_objects <= max_objects"),
        ({"num_changes": 5, "min_objects": 4}, "num_changes=5"),
        ({"change_attributes": ("colour",)}, "change_attributes"),
        ({"layout": "hex"}, "layout='hex'"),
        ({"layout": "grid", "width": 50, "height": 48}, "divisible by cell_size=16"),
        ({"layout": "grid", "width": 32, "height": 32, "max_objects": 6}, "exceeds the 2x2 grid"),
        ({"backend": "povray"}, "backend='povray'"),
        ({"supersample": 0}, "supersample=0"),
        ({"width": 8}, "at least 16x16"),
    ],
)
def test_option_errors_name_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        ClevrOptions(**options)
    with pytest.raises(TypeError):
        ClevrOptions(colour="red")


def test_blender_backend_without_blender_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no blender executable
    with pytest.raises(RuntimeError, match="no `blender` executable on PATH.*backend=pillow"):
        generate_pair(0, 0, backend="blender")


def test_roundtrip_through_members():
    sample = generate_pair(0, 9)
    back = PairSample.from_members(sample.key, sample.members())
    assert back.truth == sample.truth


@pytest.mark.skipif(shutil.which("blender") is None, reason="no blender executable on PATH")
def test_blender_backend_renders_the_same_scene():
    options = {"width": 64, "height": 48, "blender_samples": 1, "min_visible_fraction": 0.3}
    cycles = generate_pair(0, 0, backend="blender", **options)
    numpy_ = generate_pair(0, 0, **options)
    assert cycles.truth.generator == "clevr-blender@1"
    assert cycles.truth.original == numpy_.truth.original
    img0, img1 = decode_png(cycles.original_png), decode_png(cycles.modified_png)
    assert img0.shape == (48, 64, 3)
    assert diff_mask(img0, img1, 40).sum() > 20  # the edited objects show
