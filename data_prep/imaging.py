"""Small helpers shared by the pair generators: seeded RNGs, sample keys, PNG bytes, boxes.

Every generator is a pure function of (seed, index, options). `pair_rng` derives its RNG from
those two integers and the domain name only, so a pair can be regenerated from its key alone.
PNG encoding fixes its parameters and writes no metadata, so equal pixels give equal bytes.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def check_seed_index(seed: int, index: int) -> None:
    """Raise ValueError unless seed and index are non-negative integers."""
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def pair_key(domain: str, seed: int, index: int) -> str:
    """The sample key, e.g. "clevr-7-00000042"."""
    check_seed_index(seed, index)
    return f"{domain}-{seed}-{index:08d}"


def pair_rng(domain: str, seed: int, index: int) -> np.random.Generator:
    """An RNG that depends only on (domain, seed, index)."""
    check_seed_index(seed, index)
    domain_tag = zlib.crc32(domain.encode("utf-8"))
    return np.random.default_rng([int(seed), int(index), domain_tag])


def encode_png(rgb_HW3: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 RGB image, with fixed zlib settings and no metadata chunks."""
    if rgb_HW3.dtype != np.uint8 or rgb_HW3.ndim != 3 or rgb_HW3.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 array, got {rgb_HW3.dtype} {rgb_HW3.shape}")
    buf = io.BytesIO()
    Image.fromarray(rgb_HW3, "RGB").save(
        buf, format="PNG", compress_level=compress_level, optimize=False
    )
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """A uint8 HxWx3 array from PNG bytes."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def union_box(boxes: list[Box]) -> Box:
    """The smallest box holding all `boxes` (half-open [x0, y0, x1, y1])."""
    if not boxes:
        raise ValueError("union_box needs at least one box")
    xs0, ys0, xs1, ys1 = zip(*boxes, strict=True)
    return (min(xs0), min(ys0), max(xs1), max(ys1))


def mask_box(mask_HW: np.ndarray) -> Box | None:
    """Half-open bounding box [x0, y0, x1, y1] of the True pixels, or None when there are none."""
    rows = np.flatnonzero(mask_HW.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask_HW.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def diff_mask(a_HW3: np.ndarray, b_HW3: np.ndarray, threshold: int = 0) -> np.ndarray:
    """True where any channel of two uint8 images differs by more than `threshold`."""
    if a_HW3.shape != b_HW3.shape:
        raise ValueError(f"image shapes differ: {a_HW3.shape} vs {b_HW3.shape}")
    delta = np.abs(a_HW3.astype(np.int16) - b_HW3.astype(np.int16))
    return (delta > threshold).any(axis=2)
