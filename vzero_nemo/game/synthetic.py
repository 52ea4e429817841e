"""Random ground truths without images, for simulations, benchmarks and tests (pure Python).

`random_truth(domain, rng)` builds a `Truth` with the structure the data generators write
(vzero_nemo.data.schema) but renders nothing:

- clevr: 4-6 objects on a 3x4 grid of a 320x240 canvas; two objects change both colour and
  shape (same size, material and position), logged as `recolor_reshape` changes.
- chart: a bar/line/pie spec {"chart_type", "title", "labels", "values", "colors"}; either
  two values swapped (two `swap_values` changes), one value changed (`change_value`) or two
  colours swapped (two `swap_colors` changes).
- real: {"source", "width", "height", "objects": [{"label", "color", "position"}]}; one
  local edit: `recolor`, `remove`, `duplicate` or `move` of one object.
"""

from __future__ import annotations

import copy
import random

from vzero_nemo.data.schema import (
    CLEVR_COLORS,
    CLEVR_MATERIALS,
    CLEVR_SHAPES,
    CLEVR_SIZES,
    DOMAINS,
    Change,
    Truth,
)

GENERATOR = "synthetic@1"
CHART_LABELS = ("A", "B", "C", "D", "E", "F")
CHART_COLORS = ("red", "blue", "green", "orange", "purple", "gray")
REAL_LABELS = ("car", "tree", "dog", "chair", "lamp", "cup", "bird", "house")
REAL_POSITIONS = ("left", "center", "right", "top", "bottom")


def _clevr(rng: random.Random, seed: int | None) -> Truth:
    width, height, rows, cols = 320, 240, 3, 4
    cells = rng.sample([(r, c) for r in range(rows) for c in range(cols)], rng.randint(4, 6))
    objects = []
    for i, (row, col) in enumerate(cells):
        size = rng.choice(CLEVR_SIZES)
        half = 28 if size == "large" else 16
        cx, cy = int((col + 0.5) * width / cols), int((row + 0.5) * height / rows)
        objects.append(
            {
                "id": i,
                "shape": rng.choice(CLEVR_SHAPES),
                "color": rng.choice(CLEVR_COLORS),
                "material": rng.choice(CLEVR_MATERIALS),
                "size": size,
                "center": [cx, cy],
                "box": [cx - half, cy - half, cx + half, cy + half],
                "cell": [row, col],
            }
        )
    modified = copy.deepcopy(objects)
    changes = []
    for i in sorted(rng.sample(range(len(objects)), 2)):
        obj = modified[i]
        before = {"color": obj["color"], "shape": obj["shape"]}
        obj["color"] = rng.choice([c for c in CLEVR_COLORS if c != obj["color"]])
        obj["shape"] = rng.choice([s for s in CLEVR_SHAPES if s != obj["shape"]])
        after = {"color": obj["color"], "shape": obj["shape"]}
        changes.append(Change("recolor_reshape", tuple(obj["box"]), before, after, obj["id"]))
    scene = {"width": width, "height": height}
    return Truth(
        "clevr",
        {**scene, "objects": objects},
        {**scene, "objects": modified},
        tuple(changes),
        seed,
        GENERATOR,
    )


def _chart(rng: random.Random, seed: int | None) -> Truth:
    n = rng.randint(3, 6)
    labels = list(CHART_LABELS[:n])
    spec = {
        "chart_type": rng.choice(("bar", "line", "pie")),
        "title": "Synthetic data",
        "labels": labels,
        "values": rng.sample(range(1, 50), n),
        "colors": rng.sample(CHART_COLORS, n),
    }
    modified = copy.deepcopy(spec)
    kind = rng.choice(("swap_values", "change_value", "swap_colors"))
    changes = []
    if kind == "change_value":
        i = rng.randrange(n)
        new = rng.choice([v for v in range(1, 50) if v not in spec["values"]])
        modified["values"][i] = new
        changes.append(
            Change(kind, (0, 0, 1, 1), {"value": spec["values"][i]}, {"value": new}, labels[i])
        )
    else:
        key = "values" if kind == "swap_values" else "colors"
        attr = "value" if kind == "swap_values" else "color"
        i, j = rng.sample(range(n), 2)
        modified[key][i], modified[key][j] = spec[key][j], spec[key][i]
        for a, b in ((i, j), (j, i)):
            changes.append(
                Change(kind, (0, 0, 1, 1), {attr: spec[key][a]}, {attr: spec[key][b]}, labels[a])
            )
    return Truth("chart", spec, modified, tuple(changes), seed, GENERATOR)


def _real(rng: random.Random, seed: int | None) -> Truth:
    labels = rng.sample(REAL_LABELS, rng.randint(3, 5))
    objects = [
        {"label": lab, "color": rng.choice(CHART_COLORS), "position": rng.choice(REAL_POSITIONS)}
        for lab in labels
    ]
    scene = {"source": "synthetic", "width": 320, "height": 240}
    modified = copy.deepcopy(objects)
    i = rng.randrange(len(objects))
    obj, label = modified[i], objects[i]["label"]
    kind = rng.choice(("recolor", "remove", "duplicate", "move"))
    if kind == "recolor":
        new = rng.choice([c for c in CHART_COLORS if c != obj["color"]])
        before, after = {"color": obj["color"]}, {"color": new}
        obj["color"] = new
    elif kind == "move":
        new = rng.choice([p for p in REAL_POSITIONS if p != obj["position"]])
        before, after = {"position": obj["position"]}, {"position": new}
        obj["position"] = new
    elif kind == "remove":
        before, after = {"count": 1}, {"count": 0}
        del modified[i]
    else:
        before, after = {"count": 1}, {"count": 2}
        modified.append(dict(obj))
    change = Change(kind, (100, 80, 180, 160), before, after, label)
    return Truth(
        "real",
        {**scene, "objects": objects},
        {**scene, "objects": modified},
        (change,),
        seed,
        GENERATOR,
    )


_BUILDERS = {"clevr": _clevr, "chart": _chart, "real": _real}


def random_truth(domain: str, rng: random.Random, seed: int | None = None) -> Truth:
    """One random Truth of `domain` drawn from `rng` (`seed` is recorded in the Truth)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    return _BUILDERS[domain](rng, seed)


def random_truths(domain: str, num: int, seed: int) -> list[Truth]:
    """`num` random truths of `domain` from one seeded RNG ("mixed" cycles the domains)."""
    if num < 1:
        raise ValueError(f"num={num} must be >= 1")
    rng = random.Random(seed)
    domains = DOMAINS if domain == "mixed" else (domain,)
    return [random_truth(domains[i % len(domains)], rng, seed) for i in range(num)]
