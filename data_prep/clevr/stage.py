"""Camera, lights and object geometry of the CLEVR-style renderer.

Two stages: "free" copies CLEVR's set-up (perspective camera 10.5 units away, 32 degrees above
a grey floor, 35 mm lens, key light up-left, objects on the square [-3, 3]^2); "grid" looks at
the floor with an orthographic camera so that a cell of the image grid maps to a 2x2-unit
square of floor, and places one object per cell, centred in it.

Sizes follow CLEVR: a "large" object has radius 0.7, a "small" one 0.35; a cube's half-edge
is radius / sqrt(2) so that every shape covers the same footprint radius; every object rests
on the floor (z = half-height).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SIZE_RADIUS = {"large": 0.7, "small": 0.35}
GRID_FILL = {"large": 0.86, "small": 0.62}  # fraction of a cell an object's silhouette spans
GRID_CELL_WORLD = 2.0  # floor units per grid cell edge


@dataclass(frozen=True, slots=True)
class Stage:
    """Camera and key light. Vectors are world-space tuples; z is up."""

    width: int
    height: int
    position: tuple[float, float, float]
    forward: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]
    tan_half_fov: float  # > 0: perspective camera (horizontal half field of view)
    ortho_half_width: float  # > 0: orthographic camera (half the view width in floor units)
    light: tuple[float, float, float]  # key light position
    shadow_blur: float  # shadow softness, in pixels at 1x
    layout: str


def _camera_axes(elevation_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    el = math.radians(elevation_deg)
    forward = np.array([0.0, math.cos(el), -math.sin(el)])
    right = np.array([1.0, 0.0, 0.0])
    up = np.cross(right, forward)
    return forward, right, up


@lru_cache(maxsize=16)
def free_stage(width: int, height: int) -> Stage:
    forward, right, up = _camera_axes(32.0)
    position = -10.5 * forward + np.array([0.0, 0.9, 0.0])
    return Stage(
        width=width,
        height=height,
        position=tuple(position.tolist()),
        forward=tuple(forward.tolist()),
        right=tuple(right.tolist()),
        up=tuple(up.tolist()),
        tan_half_fov=16.0 / 35.0,
        ortho_half_width=0.0,
        light=(-5.5, -3.0, 9.0),
        shadow_blur=0.012 * width,
        layout="free",
    )


@lru_cache(maxsize=16)
def grid_stage(width: int, height: int, cell_size: int) -> Stage:
    forward, right, up = _camera_axes(50.0)
    cols = width // cell_size
    return Stage(
        width=width,
        height=height,
        position=tuple((-30.0 * forward).tolist()),
        forward=tuple(forward.tolist()),
        right=tuple(right.tolist()),
        up=tuple(up.tolist()),
        tan_half_fov=0.0,
        ortho_half_width=cols * GRID_CELL_WORLD / 2.0,
        light=(-12.0, -24.0, 40.0),
        shadow_blur=0.06 * cell_size,
        layout="grid",
    )


def project(stage: Stage, points_N3: np.ndarray) -> np.ndarray:
    """Pixel coordinates (x right, y down; 1x resolution) of world points, shape (N, 2)."""
    q = points_N3 - np.asarray(stage.position)
    xc = q @ np.asarray(stage.right)
    yc = q @ np.asarray(stage.up)
    aspect = stage.height / stage.width
    if stage.tan_half_fov > 0:
        zc = q @ np.asarray(stage.forward)
        sx = xc / (zc * stage.tan_half_fov)
        sy = yc / (zc * stage.tan_half_fov * aspect)
    else:
        sx = xc / stage.ortho_half_width
        sy = yc / (stage.ortho_half_width * aspect)
    return np.stack([(sx + 1.0) * stage.width / 2.0, (1.0 - sy) * stage.height / 2.0], axis=1)


def screen_to_floor_ortho(stage: Stage, px: float, py: float, z: float) -> tuple[float, float]:
    """Floor (x, y) whose point at height z projects to pixel (px, py) under an ortho stage."""
    aspect = stage.height / stage.width
    xc = (2.0 * px / stage.width - 1.0) * stage.ortho_half_width
    yc = (1.0 - 2.0 * py / stage.height) * stage.ortho_half_width * aspect
    fy, fz = stage.forward[1], stage.forward[2]
    # For camera axes built by _camera_axes: up = (0, -fz, fy) and right = x.
    # yc = (p - pos) . up = -fz * (y - pos_y) + fy * (z - pos_z); solve for y.
    y = stage.position[1] + (fy * (z - stage.position[2]) - yc) / fz
    return stage.position[0] + xc, y


def half_height(shape: str, radius: float) -> float:
    return radius / math.sqrt(2.0) if shape == "cube" else radius


def rotation_matrix(rotation_deg: float) -> np.ndarray:
    """Local -> world rotation about z (columns are the local axes in world space)."""
    a = math.radians(rotation_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@lru_cache(maxsize=8)
def _unit_outline(shape: str) -> np.ndarray:
    """Points whose convex hull is the shape of radius 1 (local frame, centred)."""
    if shape == "cube":
        h = 1.0 / math.sqrt(2.0)
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return corners * h
    if shape == "cylinder":
        a = np.linspace(0.0, 2.0 * math.pi, 28, endpoint=False)
        ring = np.stack([np.cos(a), np.sin(a)], axis=1)
        return np.concatenate(
            [np.c_[ring, np.full(28, -1.0)], np.c_[ring, np.full(28, 1.0)]], axis=0
        )
    # sphere: Fibonacci points, dense enough that their hull's projection is round
    n = 96
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    rho = np.sqrt(1.0 - z * z)
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def outline_points(
    shape: str, radius: float, rotation_deg: float, x: float, y: float
) -> np.ndarray:
    """World points whose convex hull is the object (used for bounds and shadows)."""
    local = _unit_outline(shape) * radius
    center = np.array([x, y, half_height(shape, radius)])
    return local @ rotation_matrix(rotation_deg).T + center


def grid_radius(stage: Stage, shape: str, size: str, rotation_deg: float, cell_size: int) -> float:
    """Radius that makes the object's silhouette span GRID_FILL[size] of a cell."""
    pts = outline_points(shape, 1.0, rotation_deg, 0.0, 0.0)
    xy = project(stage, pts)
    extent_px = float((xy.max(axis=0) - xy.min(axis=0)).max())
    return GRID_FILL[size] * cell_size / extent_px
