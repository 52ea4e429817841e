"""A small numpy ray caster for CLEVR-style scenes (no Blender needed).

Per image: one ray per sub-pixel (`supersample`^2 per pixel) is intersected analytically with
every object's sphere / oriented box / capped cylinder inside that object's screen bounds; a
depth buffer keeps the nearest hit (so nearer objects hide farther ones). Shading, in linear
light: hemisphere ambient + fill + a key point light (Lambert) for rubber; for metal, a
reflection of a grey floor / bright sky environment tinted by the object colour plus a sharp
highlight. Soft shadows: each object's silhouette is projected from the key light onto the
floor (the convex hull of its outline points), drawn as a polygon and blurred, plus a blurred
contact patch under every object. The image is box-filtered to 1x and converted to sRGB.
A 320x240 image with 2x2 supersampling costs ~10-15 ms on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data_prep.clevr.stage import Stage, half_height, outline_points, project, rotation_matrix

# CLEVR's colour table (sRGB 0-255, from the CLEVR generator's properties.json).
COLOR_RGB = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

FLOOR_ALBEDO = 0.42
SHADOW_STRENGTH = 0.5  # floor darkening in full shadow
CONTACT_LEVEL = 150  # contact-patch darkness on the 0-255 shadow scale


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
class Rendered:
    """A rendered image with per-object coverage (1x pixel units)."""

    rgb_HW3: np.ndarray
    ids_HW: np.ndarray  # object index at each pixel centre sample, -1 for floor
    silhouette_boxes: list[tuple[int, int, int, int] | None]  # unoccluded box per object
    silhouette_px: np.ndarray  # unoccluded pixel count per object (float, 1x units)
    visible_px: np.ndarray  # visible pixel count per object (float, 1x units)


def _srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


_LUT_SIZE = 4096
_SRGB_LUT = np.round(_srgb(np.linspace(0.0, 1.0, _LUT_SIZE)) * 255.0).astype(np.uint8)
_ALBEDO = {k: (np.asarray(v) / 255.0) ** 2.2 for k, v in COLOR_RGB.items()}


@dataclass(slots=True)
class _StageBuffers:
    origins: np.ndarray  # (Hs, Ws, 3) float32; (1, 3) for a perspective camera (one eye)
    dirs: np.ndarray  # (Hs, Ws, 3) float32, unit
    floor_t: np.ndarray  # (Hs, Ws) distance to the floor (inf when the ray misses it)
    floor_rgb: np.ndarray  # (Hs, Ws) unshadowed floor radiance (grey)


@lru_cache(maxsize=8)
def _buffers(stage: Stage, ss: int) -> _StageBuffers:
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
    to_light = np.asarray(stage.light) - p
    dist = np.linalg.norm(to_light, axis=-1)
    cos_l = to_light[..., 2] / dist
    falloff = (np.asarray(stage.light)[2] / dist) ** 1.5  # brighter under the lamp
    floor_rgb = FLOOR_ALBEDO * (0.28 + 0.85 * cos_l * falloff)
    return _StageBuffers(
        (origins[:1, :1, :] if stage.tan_half_fov > 0 else origins).astype(np.float32),
        dirs.astype(np.float32),
        floor_t.astype(np.float32),
        floor_rgb.astype(np.float32),
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


def _normal_at(body: Body, p_world: np.ndarray) -> np.ndarray:
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


def _origins(buf: _StageBuffers, sl: tuple[slice, slice]) -> np.ndarray:
    if buf.origins.shape[0] == 1:
        return buf.origins.reshape(1, 3)
    return buf.origins[sl].reshape(-1, 3)


def rasterize(stage: Stage, bodies: list[Body], ss: int) -> Coverage:
    """Intersect every sub-pixel ray with the objects; keep the nearest hit."""
    buf = _buffers(stage, ss)
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


def _ipow(x: np.ndarray, k: int) -> np.ndarray:
    """x**k for a positive integer k by repeated squaring (much faster than np.power)."""
    out = None
    base = x
    while k:
        if k & 1:
            out = base if out is None else out * base
        k >>= 1
        if k:
            base = base * base
    return out


def _unit(x, y, z):
    inv = 1.0 / np.sqrt(x * x + y * y + z * z)
    return x * inv, y * inv, z * inv


_FILL_DIR = np.array([0.6, -0.5, 0.35], dtype=np.float32) / np.float32(
    np.linalg.norm([0.6, -0.5, 0.35])
)


def _shade_objects(stage: Stage, bodies: list[Body], o, d, t, n, ids) -> np.ndarray:
    """Linear RGB (N, 3) of object samples, from rays (o, d), hit distance t, normals n."""
    dx, dy, dz = d[:, 0].copy(), d[:, 1].copy(), d[:, 2].copy()
    nx, ny, nz = n[:, 0].copy(), n[:, 1].copy(), n[:, 2].copy()
    lx, ly, lz = (np.float32(v) for v in stage.light)
    tlx, tly, tlz = _unit(lx - (o[:, 0] + t * dx), ly - (o[:, 1] + t * dy), lz - (o[:, 2] + t * dz))
    ndl = np.clip(nx * tlx + ny * tly + nz * tlz, 0.0, 1.0)
    fx, fy, fz = _FILL_DIR
    albedo = np.stack([_ALBEDO[b.color] for b in bodies]).astype(np.float32)[ids]
    metal = np.array([b.material == "metal" for b in bodies])[ids]
    out = np.empty((len(t), 3), dtype=np.float32)

    r = ~metal  # rubber: hemisphere ambient + fill + key (Lambert) + a faint sheen
    fill = np.clip(nx[r] * fx + ny[r] * fy + nz[r] * fz, 0.0, 1.0)
    diffuse = 0.21 + 0.11 * nz[r] + 0.22 * fill + 0.95 * ndl[r]
    hx, hy, hz = _unit(tlx[r] - dx[r], tly[r] - dy[r], tlz[r] - dz[r])
    ndh = np.clip(nx[r] * hx + ny[r] * hy + nz[r] * hz, 0.0, 1.0)
    out[r] = albedo[r] * diffuse[:, None] + (0.06 * _ipow(ndh, 12))[:, None]

    # Metal: a tinted mirror of a simple environment (dark floor, bright sky, a glow at the
    # horizon) plus a broad and a sharp lobe toward the key light.
    m = metal
    if m.any():
        dxm, dym, dzm, nxm, nym, nzm = dx[m], dy[m], dz[m], nx[m], ny[m], nz[m]
        dn2 = 2.0 * (dxm * nxm + dym * nym + dzm * nzm)
        rx, ry, rz = dxm - dn2 * nxm, dym - dn2 * nym, dzm - dn2 * nzm
        horizon = np.exp(-6.0 * np.abs(rz))
        sky = 0.75 + 0.45 * np.clip(rz, 0.0, 1.0) + 0.25 * horizon
        floor = 0.07 + 0.30 * horizon
        env = floor + (sky - floor) * np.clip(rz * 10.0 + 0.5, 0.0, 1.0)
        tlxm, tlym, tlzm = tlx[m], tly[m], tlz[m]
        rdl = np.clip(rx * tlxm + ry * tlym + rz * tlzm, 0.0, 1.0)
        # Lamps seen edge-on: vertical streaks on cylinders, a bright side on cubes.
        inv_rh = 1.0 / (np.sqrt(rx * rx + ry * ry) + 1e-6)
        inv_lh = 1.0 / (np.sqrt(tlxm * tlxm + tlym * tlym) + 1e-6)
        az_key = np.clip((rx * tlxm + ry * tlym) * inv_rh * inv_lh, 0.0, 1.0)
        fh = np.float32(np.hypot(fx, fy))
        az_fill = np.clip((rx * fx + ry * fy) * inv_rh / fh, 0.0, 1.0)
        edge_on = np.clip(1.0 - 1.5 * np.abs(rz), 0.0, 1.0)
        rdl6 = _ipow(rdl, 6)
        lobe = (
            0.9 * rdl6
            + 3.0 * _ipow(rdl6, 15)
            + (0.9 * _ipow(az_key, 30) + 0.4 * _ipow(az_fill, 30)) * edge_on
        )
        gain = 0.04 + 1.1 * env + 0.2 * ndl[m] + lobe
        out[m] = albedo[m] * gain[:, None] + (0.5 * lobe)[:, None]
    return out


def _box_sum(a: np.ndarray, ss: int) -> np.ndarray:
    """Sum over each ss x ss block of the first two axes."""
    out = a[0::ss, 0::ss].astype(np.float32)
    for dy in range(ss):
        for dx in range(ss):
            if dy or dx:
                out += a[dy::ss, dx::ss]
    return out


@lru_cache(maxsize=8)
def _pixel_of_sample(height: int, width: int, ss: int) -> np.ndarray:
    """Flat 1x pixel index of every flat supersampled index."""
    rows = np.arange(height * ss) // ss
    cols = np.arange(width * ss) // ss
    return (rows[:, None] * width + cols[None, :]).reshape(-1)


def render(
    stage: Stage,
    bodies: list[Body],
    ss: int,
    shadows: bool = True,
    raster: Coverage | None = None,
) -> Rendered:
    """Render `bodies` on the floor of `stage` with `ss`x`ss` samples per pixel.

    `raster` is `rasterize(stage, bodies, ss)` when the caller already has it. Objects are
    shaded per sub-pixel; the floor, which varies slowly, once per pixel and weighted by the
    fraction of the pixel's samples that miss every object.
    """
    if raster is None:
        raster = rasterize(stage, bodies, ss)
    h, w = stage.height, stage.width
    buf = _buffers(stage, ss)
    floor = _buffers(stage, 1).floor_rgb
    if shadows:
        dark = floor_shade(stage, bodies).astype(np.float32)
        floor = floor * (1.0 - (SHADOW_STRENGTH / 255.0) * dark)
    flat = np.flatnonzero(raster.ids >= 0)
    pix = _pixel_of_sample(h, w, ss)[flat]
    o = buf.origins.reshape(-1, 3)
    o = o if len(o) == 1 else o[flat]
    d = buf.dirs.reshape(-1, 3)[flat]
    ids = raster.ids.reshape(-1)[flat]
    t = raster.depth.reshape(-1)[flat]
    hits = o + t[:, None] * d
    normals = np.empty_like(d)
    for k, body in enumerate(bodies):
        won = ids == k
        if won.any():
            normals[won] = _normal_at(body, hits[won])
    colour = _shade_objects(stage, bodies, o, d, t, normals, ids)
    inv = 1.0 / ss**2
    floor_weight = 1.0 - np.bincount(pix, minlength=h * w).reshape(h, w) * inv
    lin = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        obj = np.bincount(pix, weights=colour[:, c], minlength=h * w).reshape(h, w)
        lin[..., c] = obj * inv + floor * floor_weight
    idx = np.clip(lin * (_LUT_SIZE - 1) + 0.5, 0, _LUT_SIZE - 1).astype(np.intp)
    centre = ss // 2
    return Rendered(
        rgb_HW3=_SRGB_LUT[idx],
        ids_HW=raster.ids[centre::ss, centre::ss].copy(),
        silhouette_boxes=raster.silhouette_boxes,
        silhouette_px=raster.silhouette_px,
        visible_px=raster.visible_px(),
    )


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
