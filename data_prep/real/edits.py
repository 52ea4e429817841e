"""Local photo edits: recolour, remove (fill from the surroundings), duplicate, move.

Each edit works on a float32 (H, W, 3) image in [0, 255] and returns the edited copy; regions
are ellipses inscribed in a box, blended with a feathered mask so no hard seam shows.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]

# RGB <-> YIQ: rotating (I, Q) turns the hue while keeping brightness (Y).
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32
)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


def soft_ellipse(height: int, width: int, feather: float = 0.25) -> np.ndarray:
    """(height, width) mask: 1 inside the inscribed ellipse, fading to 0 at its rim."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def recolor(img: np.ndarray, box: Box, hue_deg: float) -> np.ndarray:
    """Rotate the hue inside the box's ellipse by `hue_deg`, tinting grey areas too."""
    x0, y0, x1, y1 = box
    out = img.copy()
    patch = img[y0:y1, x0:x1] / 255.0
    yiq = patch @ _YIQ.T
    a = np.deg2rad(hue_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=np.float32)
    chroma = yiq[..., 1:] @ rot.T * 1.25
    # grey pixels have no hue to turn: give them one so the edit shows everywhere
    weak = np.clip(1.0 - np.linalg.norm(yiq[..., 1:], axis=-1) / 0.15, 0.0, 1.0)
    tint = 0.16 * np.array([np.cos(a), np.sin(a)], dtype=np.float32)
    chroma += weak[..., None] * tint
    edited = np.concatenate([yiq[..., :1], chroma], axis=-1) @ _YIQ_INV.T
    m = soft_ellipse(y1 - y0, x1 - x0)[..., None]
    out[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - m) + np.clip(edited * 255.0, 0, 255) * m
    return out


def _sum2x2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (a.ndim - 2)
    a = np.pad(a, pad)
    return a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]


def _push_pull(acc: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill pixels of zero weight from coarser averages of the known ones (push-pull)."""
    h, w = weight.shape
    known = weight > 1e-6
    colour = acc / np.maximum(weight, 1e-6)[..., None]
    if known.all() or (h <= 1 and w <= 1):
        return colour
    coarse = _push_pull(_sum2x2(acc), _sum2x2(weight))
    up = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w]
    alpha = np.clip(weight, 0.0, 1.0)[..., None]
    return colour * alpha + up * (1.0 - alpha)


def remove(img: np.ndarray, box: Box) -> np.ndarray:
    """Erase the box's ellipse and fill it smoothly from the pixels around it."""
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    bw, bh = x1 - x0, y1 - y0
    mx, my = bw // 2, bh // 2
    cx0, cy0, cx1, cy1 = max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, w), min(y1 + my, h)
    crop = img[cy0:cy1, cx0:cx1]
    hole = np.zeros(crop.shape[:2], dtype=np.float32)
    ellipse = soft_ellipse(bh, bw)
    hole[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = ellipse
    known = (hole <= 0.0).astype(np.float32)
    filled = _push_pull(crop * known[..., None], known)
    blur = Image.fromarray(np.clip(filled, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(min(bw, bh) / 10.0, 1.0))
    )
    filled = np.asarray(blur).astype(np.float32)
    m = np.clip(hole * 1.5, 0.0, 1.0)[..., None]
    out = img.copy()
    out[cy0:cy1, cx0:cx1] = crop * (1 - m) + filled * m
    return out


def paste(img: np.ndarray, src: Box, dst: Box) -> np.ndarray:
    """Copy the src box's ellipse onto the dst box (same size), feathered."""
    sx0, sy0, sx1, sy1 = src
    dx0, dy0, dx1, dy1 = dst
    if (sx1 - sx0, sy1 - sy0) != (dx1 - dx0, dy1 - dy0):
        raise ValueError(f"paste boxes differ in size: {src} vs {dst}")
    m = soft_ellipse(sy1 - sy0, sx1 - sx0, feather=0.2)[..., None]
    out = img.copy()
    out[dy0:dy1, dx0:dx1] = img[dy0:dy1, dx0:dx1] * (1 - m) + img[sy0:sy1, sx0:sx1] * m
    return out


def move(img: np.ndarray, src: Box, dst: Box) -> np.ndarray:
    """Move the src ellipse to dst: fill src from its surroundings, then paste the original."""
    sx0, sy0, sx1, sy1 = src
    dx0, dy0, dx1, dy1 = dst
    out = remove(img, src)
    m = soft_ellipse(sy1 - sy0, sx1 - sx0, feather=0.2)[..., None]
    out[dy0:dy1, dx0:dx1] = out[dy0:dy1, dx0:dx1] * (1 - m) + img[sy0:sy1, sx0:sx1] * m
    return out
