"""Soft floor shadows: each object's outline projected from the key light onto the floor.

The shadow of a convex object from a point light is the convex hull of its outline points
projected onto the floor; it is drawn as a polygon (plus a contact patch under the object) and
blurred once. `floor_change_box` bounds the floor pixels an edit of one object can change.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data_prep.clevr.raycast import Body
from data_prep.clevr.stage import Stage, outline_points, project

CONTACT_LEVEL = 150  # contact-patch darkness on the 0-255 shadow scale


def _hull(points_N2: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain), counter-clockwise, shape (M, 2)."""
    pts = points_N2[np.lexsort((points_N2[:, 1], points_N2[:, 0]))]

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower = half(pts.tolist())
    upper = half(pts[::-1].tolist())
    return np.asarray(lower[:-1] + upper[:-1])


def _shadow_polygon(stage: Stage, body: Body) -> list[tuple[float, float]]:
    """Screen polygon (pixels) of the object's hard shadow on the floor."""
    pts = outline_points(body.shape, body.radius, body.rotation_deg, body.x, body.y)
    light = np.asarray(stage.light)
    s = light[2] / (light[2] - pts[:, 2])
    floor = light + (pts - light) * s[:, None]
    hull = _hull(floor[:, :2])
    xy = project(stage, np.c_[hull, np.zeros(len(hull))])
    return [tuple(p) for p in xy.tolist()]


def _contact_polygon(stage: Stage, body: Body) -> list[tuple[float, float]]:
    a = np.linspace(0.0, 2.0 * math.pi, 28, endpoint=False)
    r = 0.95 * body.radius
    ring = np.stack([body.x + r * np.cos(a), body.y + r * np.sin(a), np.zeros_like(a)], axis=1)
    return [tuple(p) for p in project(stage, ring).tolist()]


def floor_shade(stage: Stage, bodies: list[Body], blur: bool = True) -> np.ndarray:
    """Shadow + contact darkness (uint8, 255 = full shadow), 1x resolution.

    Each object darkens the floor under it (contact patch, CONTACT_LEVEL) and where it blocks
    the key light (255); one Gaussian blur makes both soft. Shadows are soft, so drawing them
    at 1x costs nothing visible. `blur=False` returns the hard masks.
    """
    canvas = Image.new("L", (stage.width, stage.height), 0)
    draw = ImageDraw.Draw(canvas)
    for body in bodies:
        draw.polygon(_contact_polygon(stage, body), fill=CONTACT_LEVEL)
    for body in bodies:
        draw.polygon(_shadow_polygon(stage, body), fill=255)
    if blur:
        canvas = canvas.filter(ImageFilter.GaussianBlur(stage.shadow_blur))
    return np.asarray(canvas)


def floor_change_box(stage: Stage, before: Body, after: Body) -> tuple[int, int, int, int] | None:
    """Box (1x pixels) holding every floor pixel whose shading changes when `before` becomes
    `after`, whatever the other objects: the pixels where this object's hard shadow/contact
    masks differ, grown by the blur's reach (PIL's Gaussian blur has finite support < 3 sigma).
    """
    changed = floor_shade(stage, [before], blur=False) != floor_shade(stage, [after], blur=False)
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(changed.any(axis=0))
    reach = math.ceil(3.0 * stage.shadow_blur) + 2
    return (
        max(int(cols[0]) - reach, 0),
        max(int(rows[0]) - reach, 0),
        min(int(cols[-1]) + 1 + reach, stage.width),
        min(int(rows[-1]) + 1 + reach, stage.height),
    )
