"""Chart image pairs: `generate_pair(seed, index, **options) -> PairSample`.

    from data_prep.chart import generate_pair
    sample = generate_pair(seed=0, index=3, chart_types=("bar", "pie"))

A random data spec (title, axis labels, categories, values, colours) is drawn with matplotlib;
the spy chart swaps two values, swaps two colours or changes one value. An edit that leaves
fewer than `min_diff_pixels` clearly changed pixels (e.g. swapping two equal values) is
rejected and another is drawn. The change box is the bounding box of all changed pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.chart.render import render_chart
from data_prep.chart.spec import (
    CHANGE_KINDS,
    CHART_TYPES,
    applicable_kinds,
    apply_change,
    random_spec,
)
from data_prep.imaging import diff_mask, encode_png, mask_box, pair_key, pair_rng
from vzero_nemo.data.schema import Change, PairSample, Truth

DOMAIN = "chart"
VERSION = 1
CLEAR_DIFF_LEVEL = 24  # a pixel "clearly" changed when a channel moved by more than this


@dataclass(kw_only=True, slots=True)
class ChartOptions:
    """How chart pairs are drawn and edited."""

    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    dpi: int = 100
    """Matplotlib dpi (sets text size relative to the image)."""
    chart_types: tuple[str, ...] = CHART_TYPES
    """Chart types to draw from, uniformly."""
    change_kinds: tuple[str, ...] = CHANGE_KINDS
    """Edits to draw from (only those that apply to the chart)."""
    min_categories: int = 3
    """Fewest categories (bars, wedges, line points)."""
    max_categories: int = 7
    """Most categories."""
    min_diff_pixels: int = 30
    """An edit must change at least this many pixels by more than CLEAR_DIFF_LEVEL."""
    max_change_tries: int = 25
    """Edits tried before giving up on a chart."""
    png_compress_level: int = 6
    """zlib level of the PNG encoder (0-9)."""

    def __post_init__(self) -> None:
        self.chart_types = tuple(self.chart_types)
        self.change_kinds = tuple(self.change_kinds)
        if self.width < 160 or self.height < 120:
            raise ValueError(f"chart size {self.width}x{self.height} is too small; use >= 160x120")
        if not 50 <= self.dpi <= 300:
            raise ValueError(f"dpi={self.dpi} must be in [50, 300]")
        bad = [t for t in self.chart_types if t not in CHART_TYPES]
        if bad or not self.chart_types:
            raise ValueError(f"chart_types={self.chart_types!r}: pick from {CHART_TYPES}")
        bad = [k for k in self.change_kinds if k not in CHANGE_KINDS]
        if bad or not self.change_kinds:
            raise ValueError(f"change_kinds={self.change_kinds!r}: pick from {CHANGE_KINDS}")
        if not 2 <= self.min_categories <= self.max_categories <= 11:
            raise ValueError(
                f"need 2 <= min_categories <= max_categories <= 11, got "
                f"{self.min_categories}, {self.max_categories}"
            )
        if self.min_diff_pixels < 1:
            raise ValueError(f"min_diff_pixels={self.min_diff_pixels} must be >= 1")
        if self.max_change_tries < 1:
            raise ValueError(f"max_change_tries={self.max_change_tries} must be >= 1")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level={self.png_compress_level} must be in 0..9")


def visible_change(
    img0: np.ndarray, img1: np.ndarray, min_diff_pixels: int
) -> tuple[int, int, int, int] | None:
    """Box of all changed pixels, or None when too few pixels changed clearly."""
    if int(diff_mask(img0, img1, CLEAR_DIFF_LEVEL).sum()) < min_diff_pixels:
        return None
    return mask_box(diff_mask(img0, img1, 0))


def pick_visible_change(
    spec: dict, img0: np.ndarray, rng: np.random.Generator, opts: ChartOptions
) -> tuple[dict, np.ndarray, Change] | None:
    """Draw edits until one is visible; (modified spec, its image, the change) or None."""
    kinds = applicable_kinds(spec, opts.change_kinds)
    if not kinds:
        return None
    for _ in range(opts.max_change_tries):
        kind = str(rng.choice(kinds))
        new_spec, record = apply_change(spec, kind, rng)
        img1 = render_chart(new_spec, opts.width, opts.height, opts.dpi)
        box = visible_change(img0, img1, opts.min_diff_pixels)
        if box is not None:
            return new_spec, img1, Change(kind, box, **record)
    return None


def generate_pair(seed: int, index: int, **options) -> PairSample:
    """One chart pair; a pure function of (seed, index, options)."""
    opts = ChartOptions(**options)
    rng = pair_rng(DOMAIN, seed, index)
    for _ in range(10):
        chart_type = str(rng.choice(opts.chart_types))
        spec = random_spec(rng, chart_type, opts.min_categories, opts.max_categories)
        spec.update(width=opts.width, height=opts.height)
        img0 = render_chart(spec, opts.width, opts.height, opts.dpi)
        picked = pick_visible_change(spec, img0, rng, opts)
        if picked is not None:
            break
    else:
        raise RuntimeError(
            f"no visible chart edit for seed={seed} index={index} with {opts}; allow more "
            f"change_kinds or lower min_diff_pixels"
        )
    new_spec, img1, change = picked
    truth = Truth(
        domain=DOMAIN,
        original=spec,
        modified=new_spec,
        changes=(change,),
        seed=seed,
        generator=f"chart-matplotlib@{VERSION}",
    )
    return PairSample(
        pair_key(DOMAIN, seed, index),
        encode_png(img0, opts.png_compress_level),
        encode_png(img1, opts.png_compress_level),
        truth,
    )
