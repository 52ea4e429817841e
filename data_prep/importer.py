"""Import pre-edited pairs in the official Vision-Zero layout into our shards.

    python -m data_prep import --layout vision-zero SRC --out runs/data/real --domain real \
        [--scenes SCENES_DIR] [--pairs-per-shard 100] [--val-fraction 0.1]

Layout (the official code's `IMAGES_DIR`): `{base}_original.png` + `{base}_modified.png`, and an
optional scene JSON `{base}.json` (in SRC or `--scenes`, its `SCENES_DIR`). Pairs are sorted by
base name; pair i is the i-th base. The PNG bytes are stored as they are. Change boxes come from
the pixel difference: pixels whose largest channel difference exceeds `diff_threshold` are
grouped into connected regions (after joining gaps of `merge_px`); regions smaller than
`min_box_area` pixels are dropped as noise. Files that do not form a pair are listed; the import
refuses to start while any exist unless `--allow-unmatched`. A pair with images of different
sizes, identical images or an unreadable file stops the import, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from vzero_nemo.data.schema import Change, PairSample, Truth
from vzero_nemo.data.tario import decode_png_array

LAYOUTS = ("vision-zero",)
IMPORT_GENERATOR = "import-vision-zero@1"
ORIGINAL_SUFFIX = "_original.png"
MODIFIED_SUFFIX = "_modified.png"


@dataclass(frozen=True, slots=True)
class LayoutScan:
    bases: tuple[str, ...]
    unmatched: tuple[str, ...]


def scan_vision_zero(src: Path, scenes: Path | None = None) -> LayoutScan:
    """Pair up `{base}_original.png` / `{base}_modified.png`; list every file left over."""
    if not src.is_dir():
        raise ValueError(f"import source {str(src)!r} is not a folder")
    names = sorted(p.name for p in src.iterdir() if p.is_file())
    originals = {n.removesuffix(ORIGINAL_SUFFIX) for n in names if n.endswith(ORIGINAL_SUFFIX)}
    modifieds = {n.removesuffix(MODIFIED_SUFFIX) for n in names if n.endswith(MODIFIED_SUFFIX)}
    bases = originals & modifieds
    scene_names = {f"{b}.json" for b in bases}
    unmatched = [
        n
        for n in names
        if not (
            (n.endswith(ORIGINAL_SUFFIX) and n.removesuffix(ORIGINAL_SUFFIX) in bases)
            or (n.endswith(MODIFIED_SUFFIX) and n.removesuffix(MODIFIED_SUFFIX) in bases)
            or (scenes is None and n in scene_names)
        )
    ]
    if scenes is not None:
        if not scenes.is_dir():
            raise ValueError(f"--scenes {str(scenes)!r} is not a folder")
        unmatched += [
            f"{scenes.name}/{p.name}"
            for p in sorted(scenes.glob("*.json"))
            if p.name not in scene_names
        ]
    return LayoutScan(bases=tuple(sorted(bases)), unmatched=tuple(unmatched))


def diff_boxes(
    original: np.ndarray,
    modified: np.ndarray,
    *,
    diff_threshold: int,
    merge_px: int,
    min_box_area: int,
) -> list[tuple[int, int, int, int]]:
    """[x0, y0, x1, y1) boxes (end exclusive) of the regions where the images differ."""
    diff = np.abs(original.astype(np.int16) - modified.astype(np.int16)).max(axis=2)
    mask = diff > diff_threshold
    if merge_px > 0:
        grown = ndimage.binary_dilation(mask, iterations=merge_px)
    else:
        grown = mask
    labels, _ = ndimage.label(grown)
    boxes = []
    for region in ndimage.find_objects(labels):
        ys, xs = region
        if int(mask[region].sum()) < min_box_area:
            continue
        # Boxes of the real changed pixels, not of the dilated mask.
        sub = mask[region]
        rows, cols = np.nonzero(sub)
        y0, x0 = ys.start + rows.min(), xs.start + cols.min()
        y1, x1 = ys.start + rows.max() + 1, xs.start + cols.max() + 1
        boxes.append((int(x0), int(y0), int(x1), int(y1)))
    return sorted(boxes, key=lambda b: (b[1], b[0]))


@dataclass(frozen=True, slots=True)
class VisionZeroSource:
    """Pair i = the i-th base of the scan; picklable for the writer's worker processes."""

    src: str
    scenes: str | None
    bases: tuple[str, ...]
    domain: str
    diff_threshold: int = 0
    merge_px: int = 2
    min_box_area: int = 4

    def __call__(self, index: int) -> PairSample:
        base = self.bases[index]
        src = Path(self.src)
        original_path = src / f"{base}{ORIGINAL_SUFFIX}"
        modified_path = src / f"{base}{MODIFIED_SUFFIX}"
        original_png, modified_png = original_path.read_bytes(), modified_path.read_bytes()
        try:
            original = decode_png_array(original_png)
            modified = decode_png_array(modified_png)
        except ValueError as e:
            raise ValueError(f"{base}: a PNG of the pair does not decode ({e})") from e
        if original.shape != modified.shape:
            raise ValueError(
                f"{original_path.name} is {original.shape[1]}x{original.shape[0]} but "
                f"{modified_path.name} is {modified.shape[1]}x{modified.shape[0]}"
            )
        boxes = diff_boxes(
            original,
            modified,
            diff_threshold=self.diff_threshold,
            merge_px=self.merge_px,
            min_box_area=self.min_box_area,
        )
        if not boxes:
            raise ValueError(
                f"{base}: original and modified show no difference above "
                f"diff_threshold={self.diff_threshold} (area >= {self.min_box_area} px)"
            )
        height, width = original.shape[:2]
        described: dict[str, Any] = {"source": base, "width": width, "height": height}
        scene_path = Path(self.scenes or self.src) / f"{base}.json"
        original_truth = dict(described)
        if scene_path.is_file():
            original_truth["scene"] = json.loads(scene_path.read_bytes())
        truth = Truth(
            domain=self.domain,
            original=original_truth,
            modified=dict(described),
            changes=tuple(Change(kind="pixel_diff", box=box) for box in boxes),
            seed=None,
            generator=IMPORT_GENERATOR,
        )
        return PairSample(
            key=base, original_png=original_png, modified_png=modified_png, truth=truth
        )


def import_arguments(source: VisionZeroSource) -> dict[str, Any]:
    """The run arguments recorded in the manifest for an import."""
    names = "\n".join(source.bases).encode()
    return {
        "source": "import",
        "layout": "vision-zero",
        "src": str(Path(source.src).resolve()),
        "scenes": str(Path(source.scenes).resolve()) if source.scenes else None,
        "bases_sha256": hashlib.sha256(names).hexdigest(),
        "diff_threshold": source.diff_threshold,
        "merge_px": source.merge_px,
        "min_box_area": source.min_box_area,
    }
