"""Real-photo pairs with one local edit: `generate_pair(seed, index, **options) -> PairSample`.

    from data_prep.real import generate_pair
    sample = generate_pair(0, 5)                                   # bundled offline photos
    sample = generate_pair(0, 5, photo_dir="/data/photos", width=448, height=336)

A photo is picked, randomly cropped to the output aspect, maybe mirrored, and resized. The
spy image gets one edit in an elliptical region: "recolor" (hue turned), "remove" (filled
from its surroundings), "duplicate" (copied elsewhere) or "move" (copied elsewhere and its
old place filled). Regions are chosen among random candidates by local contrast, so edits
hit textured content rather than flat sky. An edit whose mean absolute change inside its box
is below `min_mean_diff` is redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from data_prep.imaging import encode_png, pair_key, pair_rng, union_box
from data_prep.real import edits
from data_prep.real.photos import load_photo, photo_list
from vzero_nemo.data.schema import Change, PairSample, Truth

DOMAIN = "real"
VERSION = 1
EDIT_KINDS = ("recolor", "remove", "duplicate", "move")
Box = tuple[int, int, int, int]


@dataclass(kw_only=True, slots=True)
class RealOptions:
    """Where photos come from and how they are edited."""

    width: int = 320
    """Output width in pixels."""
    height: int = 240
    """Output height in pixels."""
    photo_dir: str | None = None
    """Folder of photos (searched recursively); None = the offline photos bundled with
    scikit-image, scikit-learn and matplotlib."""
    edit_kinds: tuple[str, ...] = EDIT_KINDS
    """Edits to draw from, uniformly."""
    min_region: float = 0.2
    """Smallest edited region edge, as a fraction of the image's shorter side."""
    max_region: float = 0.38
    """Largest edited region edge, as a fraction of the image's shorter side."""
    min_mean_diff: float = 10.0
    """An edit must change its box by at least this mean absolute value (0-255 scale)."""
    max_edit_tries: int = 20
    """Edits tried before giving up on a photo crop."""
    png_compress_level: int = 0
    """zlib level of the PNG encoder (0-9). Photos barely compress (320x240: 225 KB per image
    stored, 133 KB at level 1, 122 KB at 6), while inflating and un-filtering dominates
    reading: `python -m vzero_nemo.data.bench_reader --domain real` reads 522 pairs per CPU
    second at level 0 against 228 at level 1 (one core), so the default stores them."""

    def __post_init__(self) -> None:
        self.edit_kinds = tuple(self.edit_kinds)
        if self.width < 32 or self.height < 32:
            raise ValueError(f"size {self.width}x{self.height} is too small; use >= 32x32")
        bad = [k for k in self.edit_kinds if k not in EDIT_KINDS]
        if bad or not self.edit_kinds:
            raise ValueError(f"edit_kinds={self.edit_kinds!r}: pick from {EDIT_KINDS}")
        if not 0.05 <= self.min_region <= self.max_region <= 0.45:
            raise ValueError(
                f"need 0.05 <= min_region <= max_region <= 0.45, got {self.min_region}, "
                f"{self.max_region} (larger regions leave no room to move a patch)"
            )
        if self.min_mean_diff <= 0:
            raise ValueError(f"min_mean_diff={self.min_mean_diff} must be > 0")
        if self.max_edit_tries < 1:
            raise ValueError(f"max_edit_tries={self.max_edit_tries} must be >= 1")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level={self.png_compress_level} must be in 0..9")


def _crop(rng: np.random.Generator, photo: Image.Image, opts: RealOptions) -> tuple:
    pw, ph = photo.size
    aspect = opts.width / opts.height
    cw = min(pw, ph * aspect) * float(rng.uniform(0.55, 1.0))
    ch = cw / aspect
    x0 = float(rng.uniform(0, pw - cw))
    y0 = float(rng.uniform(0, ph - ch))
    box = (x0, y0, x0 + cw, y0 + ch)
    img = photo.resize((opts.width, opts.height), Image.Resampling.BICUBIC, box=box,
                       reducing_gap=2.0)  # fmt: skip
    flip = bool(rng.random() < 0.5)
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(img).astype(np.float32), [round(v) for v in box], flip


def _random_box(rng: np.random.Generator, opts: RealOptions) -> Box:
    short = min(opts.width, opts.height)
    side = float(rng.uniform(opts.min_region, opts.max_region)) * short
    ratio = float(rng.uniform(0.75, 1.33))
    bw = max(int(side * ratio**0.5), 4)
    bh = max(int(side / ratio**0.5), 4)
    x0 = int(rng.integers(0, opts.width - bw + 1))
    y0 = int(rng.integers(0, opts.height - bh + 1))
    return (x0, y0, x0 + bw, y0 + bh)


def _salient_box(rng: np.random.Generator, img: np.ndarray, opts: RealOptions) -> Box:
    """The most textured of 8 random boxes (local contrast = std of the grey values)."""
    grey = img.mean(axis=2)
    boxes = [_random_box(rng, opts) for _ in range(8)]
    scores = [float(grey[y0:y1, x0:x1].std()) for x0, y0, x1, y1 in boxes]
    return boxes[int(np.argmax(scores))]


def _target_box(rng: np.random.Generator, src: Box, opts: RealOptions, near: bool) -> Box | None:
    """A box of src's size that does not touch src (near it when `near`), or None."""
    x0, y0, x1, y1 = src
    bw, bh = x1 - x0, y1 - y0
    for _ in range(30):
        if near:
            nx = x0 + int(rng.integers(-2 * bw, 2 * bw + 1))
            ny = y0 + int(rng.integers(-2 * bh, 2 * bh + 1))
        else:
            nx = int(rng.integers(0, opts.width - bw + 1))
            ny = int(rng.integers(0, opts.height - bh + 1))
        inside = 0 <= nx <= opts.width - bw and 0 <= ny <= opts.height - bh
        apart = nx >= x1 + 2 or nx + bw <= x0 - 2 or ny >= y1 + 2 or ny + bh <= y0 - 2
        if inside and apart:
            return (nx, ny, nx + bw, ny + bh)
    return None


def _mean_diff(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(a[y0:y1, x0:x1] - b[y0:y1, x0:x1]).mean())


def apply_edit(
    rng: np.random.Generator, img: np.ndarray, kind: str, opts: RealOptions
) -> tuple[np.ndarray, Change, list[Box]] | None:
    """The edited image, its Change and the boxes that must show it; None if no room."""
    src = _salient_box(rng, img, opts)
    if kind == "recolor":
        hue = float(rng.uniform(90.0, 270.0))
        return (
            edits.recolor(img, src, hue),
            Change(kind, src, {"hue_shift_deg": 0.0}, {"hue_shift_deg": round(hue, 1)}, "region"),
            [src],
        )
    if kind == "remove":
        return edits.remove(img, src), Change(kind, src, {"box": list(src)}, {}, "region"), [src]
    dst = _target_box(rng, src, opts, near=kind == "move")
    if dst is None:
        return None
    if kind == "duplicate":
        out = edits.paste(img, src, dst)
        change = Change(kind, dst, {"box": list(src)}, {"box": list(dst)}, "region")
        return out, change, [dst]
    if kind == "move":
        out = edits.move(img, src, dst)
        change = Change(
            kind, union_box([src, dst]), {"box": list(src)}, {"box": list(dst)}, "region"
        )
        return out, change, [src, dst]
    raise ValueError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}")


def generate_pair(seed: int, index: int, **options) -> PairSample:
    """One real-photo pair; a pure function of (seed, index, options) and the photo files."""
    opts = RealOptions(**options)
    photos = photo_list(opts.photo_dir)
    rng = pair_rng(DOMAIN, seed, index)
    for _ in range(10):
        name, path = photos[int(rng.integers(len(photos)))]
        img0, crop, flip = _crop(rng, load_photo(path), opts)
        for _ in range(opts.max_edit_tries):
            kind = str(rng.choice(opts.edit_kinds))
            edited = apply_edit(rng, img0, kind, opts)
            if edited is None:
                continue
            img1, change, boxes = edited
            img1 = np.clip(np.round(img1), 0, 255)
            if all(_mean_diff(img0, img1, b) >= opts.min_mean_diff for b in boxes):
                break
        else:
            continue
        break
    else:
        raise RuntimeError(
            f"no visible edit for seed={seed} index={index} with {opts}; the photos may be "
            f"too flat: lower min_mean_diff or use other photos"
        )
    desc = {"source": name, "width": opts.width, "height": opts.height, "crop": crop, "flip": flip}
    truth = Truth(
        domain=DOMAIN,
        original=desc,
        modified=dict(desc),
        changes=(change,),
        seed=seed,
        generator=f"real-edit@{VERSION}",
    )
    return PairSample(
        pair_key(DOMAIN, seed, index),
        encode_png(img0.astype(np.uint8), opts.png_compress_level),
        encode_png(img1.astype(np.uint8), opts.png_compress_level),
        truth,
    )
