"""Contact sheets of image pairs: original | modified per row, change boxes in red.

    from data_prep.preview import make_contact_sheet
    make_contact_sheet(samples, "/tmp/sheet.png", max_pairs=8)

(`python -m data_prep preview DIR --out sheet.png` reads shards and calls this.) Small images
(e.g. 48x48 grid scenes) are enlarged with nearest-neighbour sampling so their pixels stay
crisp; every box is drawn on both images so a reader can check the edit by eye. Each row has
a caption: the key and one line per change (kind, target, before -> after).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vzero_nemo.data.schema import Change, PairSample

MIN_ROW_HEIGHT = 192
GAP = 8
CAPTION_LINE = 15
BOX_COLOR = (230, 0, 0)


def _caption_lines(sample: PairSample, max_chars: int) -> list[str]:
    lines = [f"{sample.key}  ({sample.truth.generator})"]
    for change in sample.truth.changes:
        lines.append(_describe(change)[:max_chars])
    return lines


def _describe(change: Change) -> str:
    target = "" if change.target is None else f" {change.target}"
    before = ", ".join(f"{k}={v}" for k, v in change.before.items())
    after = ", ".join(f"{k}={v}" for k, v in change.after.items())
    return f"{change.kind}{target}: {before} -> {after}  box={list(change.box)}"


def _framed(png: bytes, boxes: list[tuple[int, int, int, int]], scale: int) -> Image.Image:
    with Image.open(io.BytesIO(png)) as img:
        rgb = img.convert("RGB")
    if scale > 1:
        rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(rgb)
    width = max(2, scale // 2)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle(
            (x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1), outline=BOX_COLOR, width=width
        )
    return rgb


def make_contact_sheet(
    samples: list[PairSample], out_path: str | Path, max_pairs: int = 16
) -> Path:
    """Write a PNG contact sheet of up to `max_pairs` samples to `out_path`; return its path."""
    if not samples:
        raise ValueError("make_contact_sheet needs at least one sample")
    if max_pairs < 1:
        raise ValueError(f"max_pairs={max_pairs} must be >= 1")
    font = ImageFont.load_default(size=12)
    rows = []
    for sample in samples[:max_pairs]:
        boxes = [c.box for c in sample.truth.changes]
        with Image.open(io.BytesIO(sample.original_png)) as probe:
            height = probe.height
        scale = max(1, -(-MIN_ROW_HEIGHT // height)) if height < MIN_ROW_HEIGHT else 1
        left = _framed(sample.original_png, boxes, scale)
        right = _framed(sample.modified_png, boxes, scale)
        width = left.width + GAP + right.width
        lines = _caption_lines(sample, max_chars=max(40, width // 6))
        row = Image.new("RGB", (width, left.height + CAPTION_LINE * len(lines) + GAP), "white")
        row.paste(left, (0, 0))
        row.paste(right, (left.width + GAP, 0))
        draw = ImageDraw.Draw(row)
        for i, line in enumerate(lines):
            draw.text((2, left.height + 2 + i * CAPTION_LINE), line, fill=(0, 0, 0), font=font)
        rows.append(row)
    sheet = Image.new(
        "RGB", (max(r.width for r in rows) + 2 * GAP, sum(r.height + GAP for r in rows) + GAP),
        (235, 235, 235),
    )  # fmt: skip
    y = GAP
    for row in rows:
        sheet.paste(row, (GAP, y))
        y += row.height + GAP
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out
