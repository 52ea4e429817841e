"""Which attribute values CLEVR scenes are drawn with (sizes / materials options)."""

import pytest

from data_prep.clevr import ClevrOptions, generate_pair

pytestmark = pytest.mark.unit

GRID = dict(layout="grid", width=48, height=48, cell_size=16)


def test_restricted_sizes_and_materials_are_respected():
    for index in range(6):
        truth = generate_pair(0, index, sizes=("large",), materials=("rubber",), **GRID).truth
        for scene in (truth.original, truth.modified):
            assert {o["size"] for o in scene["objects"]} == {"large"}
            assert {o["material"] for o in scene["objects"]} == {"rubber"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sizes=()), "sizes=\\(\\): pick a non-empty subset"),
        (dict(materials=("wood",)), "materials=\\('wood',\\)"),
        (dict(sizes=("large",), change_attributes=("size",)), "allow at least two values"),
    ],
)
def test_bad_draw_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClevrOptions(**kwargs)
