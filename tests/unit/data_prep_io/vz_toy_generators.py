"""A small, fast pair generator for the writer/reader tests (a real generators module: the same
GENERATORS / OPTIONS interface as data_prep.generators, used via `--generators`).

Draws a few coloured rectangles on a grey background; the modified image recolours one of them.
"""

from __future__ import annotations

import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from data_prep.finalize import finalize
from data_prep.shards import RunSpec, write_shards
from data_prep.sources import make_generator_source
from vzero_nemo.data.manifest import Manifest
from vzero_nemo.data.schema import Change, PairSample, Truth

COLORS = {
    "red": (220, 40, 40),
    "blue": (40, 60, 220),
    "green": (40, 180, 60),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 170),
}


@dataclass(frozen=True, slots=True)
class ToyOptions:
    width: int = 64
    height: int = 48
    num_shapes: int = 3
    delay_s: float = 0.0
    # A deliberately broken pair, to test `verify`: "identical" images, a change box
    # "outside" the image, or a "no_changes" truth, at pair index `defect_index`.
    defect: str = ""
    defect_index: int = -1

    def __post_init__(self) -> None:
        if self.num_shapes < 1:
            raise ValueError(f"num_shapes must be >= 1, got {self.num_shapes}")
        if self.defect not in ("", "identical", "outside", "no_changes"):
            raise ValueError(f"unknown defect {self.defect!r}")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _draw(width: int, height: int, shapes: list[dict]) -> Image.Image:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        draw.rectangle(shape["box"], fill=COLORS[shape["color"]])
    return image


def generate_toy_pair(seed: int, index: int, **options: object) -> PairSample:
    opts = ToyOptions(**options)  # type: ignore[arg-type]
    if opts.delay_s > 0:
        time.sleep(opts.delay_s)
    rng = random.Random(f"{seed}:{index}")
    shapes = []
    for i in range(opts.num_shapes):
        x0 = rng.randrange(0, opts.width - 12)
        y0 = rng.randrange(0, opts.height - 12)
        box = [x0, y0, x0 + rng.randrange(6, 12), y0 + rng.randrange(6, 12)]
        shapes.append({"id": i, "color": rng.choice(sorted(COLORS)), "box": box})
    target = rng.randrange(opts.num_shapes)
    before = shapes[target]["color"]
    after = rng.choice(sorted(c for c in COLORS if c != before))
    modified_shapes = [dict(s) for s in shapes]
    modified_shapes[target]["color"] = after
    # The target is drawn last in the modified image so the change is always visible.
    order = [s for s in modified_shapes if s["id"] != target] + [modified_shapes[target]]
    original_order = [s for s in shapes if s["id"] != target] + [shapes[target]]
    x0, y0, x1, y1 = shapes[target]["box"]
    defect = opts.defect if index == opts.defect_index else ""
    if defect == "identical":
        order = original_order
    if defect == "outside":
        x1 = opts.width + 5
    truth = Truth(
        domain="clevr",
        original={"width": opts.width, "height": opts.height, "objects": shapes},
        modified={"width": opts.width, "height": opts.height, "objects": modified_shapes},
        changes=()
        if defect == "no_changes"
        else (
            Change(
                kind="recolor",
                box=(x0, y0, x1 + 1, y1 + 1),
                before={"color": before},
                after={"color": after},
                target=target,
            ),
        ),
        seed=seed,
        generator="toy@1",
    )
    return PairSample(
        key=f"toy{index}",
        original_png=_png(_draw(opts.width, opts.height, original_order)),
        modified_png=_png(_draw(opts.width, opts.height, order)),
        truth=truth,
    )


GENERATORS = {"clevr": generate_toy_pair}
OPTIONS = {"clevr": ToyOptions}
TOY_MODULE = "tests.unit.data_prep_io.vz_toy_generators"


def make_toy_set(
    out: Path,
    *,
    num_pairs: int,
    pairs_per_shard: int,
    seed: int = 0,
    val_fraction: float = 0.0,
    workers: int = 1,
    energon: bool = False,
    opts: tuple[str, ...] = (),
) -> Manifest:
    """Write and finalize a toy set through the real writer (as `generate` does)."""
    source, arguments = make_generator_source(TOY_MODULE, "clevr", seed, list(opts))
    run = RunSpec("clevr", num_pairs, pairs_per_shard, arguments)
    write_shards(out, run, source, workers=workers, progress=False)
    return finalize(out, val_fraction=val_fraction, energon=energon)
