"""Scene sampling and the spy edit for CLEVR-style pairs.

A scene is a list of `SceneObject`s. `sample_scene` draws CLEVR attributes and floor positions
(free layout: uniform on [-3, 3]^2 with footprints at least `MIN_GAP` apart, as CLEVR;
grid layout: distinct cells, each object centred in its cell). `apply_changes` picks
`num_changes` objects and gives each a new value of every attribute in `change_attributes`,
keeping its position (its cell in grid layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from data_prep.clevr.options import ClevrOptions, vocabulary
from data_prep.clevr.raycast import Body, screen_bounds
from data_prep.clevr.stage import (
    SIZE_RADIUS,
    Stage,
    grid_radius,
    half_height,
    screen_to_floor_ortho,
)
from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_SHAPES

FLOOR_HALF_EXTENT = 3.0
MIN_GAP = 0.25  # floor distance between two footprints (CLEVR's min_dist)
EDGE_MARGIN_PX = 2.0


@dataclass(frozen=True, slots=True)
class SceneObject:
    id: int
    shape: str
    color: str
    material: str
    size: str
    x: float
    y: float
    radius: float
    rotation_deg: float
    cell: tuple[int, int] | None = None

    def body(self) -> Body:
        return Body(
            self.shape, self.color, self.material, self.radius, self.rotation_deg, self.x, self.y
        )


def _inside_image(stage: Stage, obj: SceneObject) -> bool:
    x0, y0, x1, y1 = screen_bounds(stage, obj.body())
    m = EDGE_MARGIN_PX
    return x0 >= m and y0 >= m and x1 <= stage.width - m and y1 <= stage.height - m


def _place_in_cell(stage: Stage, obj: SceneObject, cell_size: int) -> SceneObject:
    """Set radius and floor position so the object is centred in its grid cell."""
    assert obj.cell is not None
    radius = grid_radius(stage, obj.shape, obj.size, obj.rotation_deg, cell_size)
    row, col = obj.cell
    px, py = (col + 0.5) * cell_size, (row + 0.5) * cell_size
    x, y = screen_to_floor_ortho(stage, px, py, half_height(obj.shape, radius))
    return replace(obj, x=x, y=y, radius=radius)


def _rotation(rng: np.random.Generator, layout: str) -> float:
    if layout == "grid":  # turned enough that a cube shows two side faces and its top
        return float(rng.choice([-1.0, 1.0]) * rng.uniform(20.0, 40.0))
    return float(rng.uniform(0.0, 360.0))


def _random_attributes(rng: np.random.Generator, opts: ClevrOptions) -> dict[str, str]:
    return {
        "shape": str(rng.choice(CLEVR_SHAPES)),
        "color": str(rng.choice(CLEVR_COLORS)),
        "material": str(rng.choice(opts.materials)),
        "size": str(rng.choice(opts.sizes)),
    }


def _footprints_clear(objects: list[SceneObject], candidate: SceneObject) -> bool:
    for other in objects:
        gap = math.hypot(other.x - candidate.x, other.y - candidate.y)
        if gap < other.radius + candidate.radius + MIN_GAP:
            return False
    return True


def sample_scene(
    rng: np.random.Generator, stage: Stage, opts: ClevrOptions
) -> list[SceneObject] | None:
    """A random scene, or None when the objects could not be placed (caller redraws)."""
    count = int(rng.integers(opts.min_objects, opts.max_objects + 1))
    if opts.layout == "grid":
        cells = rng.choice(opts.grid_rows * opts.grid_cols, size=count, replace=False)
        objects = []
        for i, cell in enumerate(cells.tolist()):
            obj = SceneObject(
                id=i,
                x=0.0,
                y=0.0,
                radius=0.0,
                rotation_deg=_rotation(rng, "grid"),
                cell=(cell // opts.grid_cols, cell % opts.grid_cols),
                **_random_attributes(rng, opts),
            )
            objects.append(_place_in_cell(stage, obj, opts.cell_size))
        return objects

    objects = []
    for i in range(count):
        for _ in range(100):
            attrs = _random_attributes(rng, opts)
            obj = SceneObject(
                id=i,
                x=float(rng.uniform(-FLOOR_HALF_EXTENT, FLOOR_HALF_EXTENT)),
                y=float(rng.uniform(-FLOOR_HALF_EXTENT, FLOOR_HALF_EXTENT)),
                radius=SIZE_RADIUS[attrs["size"]],
                rotation_deg=_rotation(rng, "free"),
                **attrs,
            )
            if _footprints_clear(objects, obj) and _inside_image(stage, obj):
                objects.append(obj)
                break
        else:
            return None
    return objects


def _changed(
    rng: np.random.Generator, stage: Stage, obj: SceneObject, opts: ClevrOptions
) -> SceneObject:
    new = {}
    for attr in opts.change_attributes:
        allowed = {"size": opts.sizes, "material": opts.materials}.get(attr, vocabulary(attr))
        choices = [v for v in allowed if v != getattr(obj, attr)]
        new[attr] = str(rng.choice(choices))
    out = replace(obj, **new)
    if opts.layout == "grid":
        return _place_in_cell(stage, out, opts.cell_size)
    return replace(out, radius=SIZE_RADIUS[out.size])


def apply_changes(
    rng: np.random.Generator, stage: Stage, scene: list[SceneObject], opts: ClevrOptions
) -> tuple[list[SceneObject], list[int]] | None:
    """The spy scene and the ids of the changed objects, or None when no valid edit was found."""
    for _ in range(20):
        targets = sorted(rng.choice(len(scene), size=opts.num_changes, replace=False).tolist())
        modified = list(scene)
        ok = True
        for k in targets:
            new = _changed(rng, stage, scene[k], opts)
            others = [o for j, o in enumerate(modified) if j != k]
            if opts.layout == "free" and not (
                _footprints_clear(others, new) and _inside_image(stage, new)
            ):
                ok = False
                break
            modified[k] = new
        if ok:
            return modified, targets
    return None
