"""Rays and analytic hits for CLEVR-style scenes: the geometry half of the numpy renderer.

One ray per sub-pixel (`supersample`^2 per pixel) is intersected with every object's sphere /
oriented box / capped cylinder inside that object's screen bounds; a depth buffer keeps the
nearest hit, so nearer objects hide farther ones whatever the drawing order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from data_prep.clevr.stage import Stage, half_height, outline_points, project, rotation_matrix


@dataclass(frozen=True, slots=True)
class Body:
    """One object as the renderer needs it."""

    shape: str
    color: str
    material: str
    radius: float
    rotation_deg: float
    x: float
    y: float


@dataclass(slots=True)
class RayBuffers:
    """Per-sub-pixel rays of a stage (cached per stage and supersampling)."""

    origins: np.ndarray  # (Hs, Ws, 3) float32; (1, 3) for a perspective camera (one eye)
    dirs: np.ndarray  # (Hs, Ws, 3) float32, unit
    floor_t: np.ndarray  # (Hs, Ws) distance to the floor (inf when the ray misses it)
    floor_points: np.ndarray  # (Hs, Ws, 3) where each ray meets the floor (z = 0)


@lru_cache(maxsize=8)
def ray_buffers(stage: Stage, ss: int) -> RayBuffers:
    ws, hs = stage.width * ss, stage.height * ss
    aspect = stage.height / stage.width
    sx = (np.arange(ws) + 0.5) / ws * 2.0 - 1.0
    sy = 1.0 - (np.arange(hs) + 0.5) / hs * 2.0
    sx, sy = np.meshgrid(sx, sy)
    right, up, fwd = (np.asarray(v) for v in (stage.right, stage.up, stage.forward))
    pos = np.asarray(stage.position)
    if stage.tan_half_fov > 0:
        t = stage.tan_half_fov
        dirs = fwd + (sx * t)[..., None] * right + (sy * t * aspect)[..., None] * up
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        origins = np.broadcast_to(pos, dirs.shape)
    else:
        h = stage.ortho_half_width
        origins = pos + (sx * h)[..., None] * right + (sy * h * aspect)[..., None] * up
        dirs = np.broadcast_to(fwd, origins.shape).copy()
    with np.errstate(divide="ignore"):
        floor_t = np.where(dirs[..., 2] < -1e-6, -origins[..., 2] / dirs[..., 2], np.inf)
    # Rays that miss the floor (only in very tall images) take the floor colour far away.
    p = origins + np.minimum(floor_t, 60.0)[..., None] * dirs
    p[..., 2] = 0.0
    return RayBuffers(
        (origins[:1, :1, :] if stage.tan_half_fov > 0 else origins).astype(np.float32),
        dirs.astype(np.float32),
        floor_t.astype(np.float32),
        p.astype(np.float32),
    )


def _hit_sphere(o, d, r):
    b = (o * d).sum(axis=1)
    c = (o * o).sum(axis=1) - r * r
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _hit_box(o, d, h):
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    inv = 1.0 / d
    t1 = (-h - o) * inv
    t2 = (h - o) * inv
    tnear = np.minimum(t1, t2).max(axis=1)
    tfar = np.maximum(t1, t2).min(axis=1)
    return np.where((tnear <= tfar) & (tnear > 0), tnear, np.inf)


def _hit_cylinder(o, d, r, h):
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        zs = o[:, 2] + ts * d[:, 2]
        side = (disc >= 0) & (a > 1e-12) & (ts > 0) & (np.abs(zs) <= h)
        ts = np.where(side, ts, np.inf)
        dz = np.where(np.abs(d[:, 2]) < 1e-12, 1e-12, d[:, 2])
        tt = (np.sign(-dz) * h - o[:, 2]) / dz  # the cap that faces the ray
    xt = o[:, 0] + tt * d[:, 0]
    yt = o[:, 1] + tt * d[:, 1]
    cap = (tt > 0) & (xt * xt + yt * yt <= r * r)
    return np.minimum(ts, np.where(cap, tt, np.inf))


def _intersect(body: Body, o_world, d_world) -> np.ndarray:
    """Distance to the first hit (inf for a miss) of rays with origins (N, 3) or (1, 3) and
    unit directions (N, 3)."""
    hz = half_height(body.shape, body.radius)
    rot = rotation_matrix(body.rotation_deg).astype(np.float32)
    center = np.array([body.x, body.y, hz], dtype=np.float32)
    o = (o_world - center) @ rot
    d = d_world @ rot
    if body.shape == "sphere":
        return _hit_sphere(o, d, body.radius)
    if body.shape == "cube":
        return _hit_box(o, d, np.float32(hz))
    if body.shape == "cylinder":
        return _hit_cylinder(o, d, body.radius, hz)
    raise ValueError(f"unknown shape {body.shape!r}")


def normal_at(body: Body, p_world: np.ndarray) -> np.ndarray:
    """World normals at points (N, 3) on the object's surface."""
    hz = half_height(body.shape, body.radius)
    rot = rotation_matrix(body.rotation_deg).astype(np.float32)
    p = (p_world - np.array([body.x, body.y, hz], dtype=np.float32)) @ rot
    if body.shape == "sphere":
        n = p / body.radius
    elif body.shape == "cube":
        axis = np.abs(p).argmax(axis=1)
        rows = np.arange(len(p))
        n = np.zeros_like(p)
        n[rows, axis] = np.sign(p[rows, axis])
    else:  # cylinder: side points lie at radius r; cap points at |z| = h, inside the rim
        radial = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) + 1e-12
        tol = 2e-3 * body.radius
        cap = (np.abs(p[:, 2]) > hz - tol) & (radial < body.radius - tol)
        n = np.stack([p[:, 0] / radial, p[:, 1] / radial, np.zeros(len(p), p.dtype)], axis=1)
        n[cap] = np.stack([np.zeros(cap.sum()), np.zeros(cap.sum()), np.sign(p[cap, 2])], axis=1)
    return n @ rot.T


def screen_bounds(stage: Stage, body: Body) -> tuple[float, float, float, float]:
    """Unclipped pixel bounds (x0, y0, x1, y1) of the object's outline."""
    xy = project(stage, outline_points(body.shape, body.radius, body.rotation_deg, body.x, body.y))
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


@dataclass(slots=True)
class Coverage:
    """Depth-buffered hits at the supersampled resolution."""

    ss: int
    depth: np.ndarray  # (Hs, Ws) ray length to the nearest hit
    ids: np.ndarray  # (Hs, Ws) nearest object index, -1 for floor
    silhouette_boxes: list  # per object: unoccluded box in 1x pixels, or None
    silhouette_px: np.ndarray  # per object: unoccluded area in 1x pixels

    def visible_px(self) -> np.ndarray:
        """Per object: visible area in 1x pixels."""
        n = len(self.silhouette_boxes)
        return np.bincount(self.ids[self.ids >= 0], minlength=n) / self.ss**2


def _origins(buf: RayBuffers, sl: tuple[slice, slice]) -> np.ndarray:
    if buf.origins.shape[0] == 1:
        return buf.origins.reshape(1, 3)
    return buf.origins[sl].reshape(-1, 3)


def rasterize(stage: Stage, bodies: list[Body], ss: int) -> Coverage:
    """Intersect every sub-pixel ray with the objects; keep the nearest hit."""
    buf = ray_buffers(stage, ss)
    hs, ws = buf.floor_t.shape
    depth = buf.floor_t.copy()
    ids = np.full((hs, ws), -1, dtype=np.int16)
    boxes: list = []
    counts = np.zeros(len(bodies))
    for k, body in enumerate(bodies):
        x0, y0, x1, y1 = screen_bounds(stage, body)
        c0, r0 = max(int(math.floor(x0 * ss)) - 1, 0), max(int(math.floor(y0 * ss)) - 1, 0)
        c1, r1 = min(int(math.ceil(x1 * ss)) + 1, ws), min(int(math.ceil(y1 * ss)) + 1, hs)
        if c1 <= c0 or r1 <= r0:
            boxes.append(None)
            continue
        sl = (slice(r0, r1), slice(c0, c1))
        shape2 = (r1 - r0, c1 - c0)
        t = _intersect(body, _origins(buf, sl), buf.dirs[sl].reshape(-1, 3))
        t = t.reshape(shape2)
        hit = np.isfinite(t)
        counts[k] = hit.sum() / ss**2
        rows = np.flatnonzero(hit.any(axis=1))
        if rows.size == 0:
            boxes.append(None)
            continue
        cols = np.flatnonzero(hit.any(axis=0))
        boxes.append(
            (
                (c0 + int(cols[0])) // ss,
                (r0 + int(rows[0])) // ss,
                -(-(c0 + int(cols[-1]) + 1) // ss),
                -(-(r0 + int(rows[-1]) + 1) // ss),
            )
        )
        region_depth = depth[sl]
        closer = hit & (t < region_depth)
        region_depth[closer] = t[closer]
        ids[sl][closer] = k
    return Coverage(ss, depth, ids, boxes, counts)
