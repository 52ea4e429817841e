"""The image-pair sample schema: defined once, imported by the writer and the reader.

A sample is one WebDataset entry with three members sharing a key:

    <key>.original.png   the image civilians see (PNG bytes)
    <key>.modified.png   the spy's image (PNG bytes)
    <key>.json           the ground truth (UTF-8 JSON, see `Truth`)

The ground truth is for evaluation, scripted policies and pre-training captions; it is never
used to compute rewards. This module is pure Python (no PIL, no torch) so that the game code,
the data_prep writer and the training reader can all import it cheaply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

DOMAINS = ("clevr", "chart", "real")

# WebDataset member suffixes (the part after "<key>.").
ORIGINAL_MEMBER = "original.png"
MODIFIED_MEMBER = "modified.png"
TRUTH_MEMBER = "json"
MEMBERS = (ORIGINAL_MEMBER, MODIFIED_MEMBER, TRUTH_MEMBER)

# CLEVR's attribute vocabulary (Johnson et al. 2017), shared by the renderer, prompts,
# scripted policies and pre-training captions.
CLEVR_SHAPES = ("cube", "sphere", "cylinder")
CLEVR_COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
CLEVR_MATERIALS = ("rubber", "metal")
CLEVR_SIZES = ("small", "large")


@dataclass(frozen=True, slots=True)
class Change:
    """One edit that turns the original into the modified image.

    kind: domain-specific edit name, e.g. "recolor_reshape" (clevr), "swap_values",
        "change_value", "swap_colors" (chart), "recolor", "remove", "duplicate", "move" (real).
    box: [x0, y0, x1, y1] pixel box (in the modified image) that contains the visible change.
    before / after: the changed attributes, e.g. {"color": "red", "shape": "cube"}.
    target: what was changed (object id, category label, region name), or None.
    """

    kind: str
    box: tuple[int, int, int, int]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    target: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "box": list(self.box),
            "before": self.before,
            "after": self.after,
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        box = d["box"]
        if len(box) != 4:
            raise ValueError(f"change box must have 4 numbers, got {box!r}")
        return cls(
            kind=str(d["kind"]),
            box=tuple(int(v) for v in box),  # type: ignore[arg-type]
            before=dict(d.get("before") or {}),
            after=dict(d.get("after") or {}),
            target=d.get("target"),
        )


@dataclass(frozen=True, slots=True)
class Truth:
    """Ground truth of one pair.

    domain: one of DOMAINS.
    original / modified: the domain's description of each image. clevr: a scene graph
        {"width", "height", "objects": [{"id", "shape", "color", "material", "size",
        "center": [x, y], "box": [x0, y0, x1, y1], "cell": [row, col] | None}]};
        chart: the chart spec; real: {"source": name, "width", "height"}.
    changes: the edit log.
    seed: the generator seed that reproduces this pair; generator: "<name>@<version>".
    """

    domain: str
    original: dict[str, Any]
    modified: dict[str, Any]
    changes: tuple[Change, ...]
    seed: int | None = None
    generator: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; expected one of {DOMAINS}")

    def to_json(self) -> bytes:
        d = {
            "schema_version": self.schema_version,
            "domain": self.domain,
            "seed": self.seed,
            "generator": self.generator,
            "original": self.original,
            "modified": self.modified,
            "changes": [c.to_dict() for c in self.changes],
        }
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> Truth:
        d = json.loads(raw)
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"truth schema_version {version!r} != supported {SCHEMA_VERSION}")
        return cls(
            domain=d["domain"],
            original=d["original"],
            modified=d["modified"],
            changes=tuple(Change.from_dict(c) for c in d["changes"]),
            seed=d.get("seed"),
            generator=d.get("generator", ""),
        )


@dataclass(frozen=True, slots=True)
class PairSample:
    """One image pair as stored in a shard: PNG bytes for both images plus the truth."""

    key: str
    original_png: bytes
    modified_png: bytes
    truth: Truth

    def members(self) -> dict[str, bytes]:
        """The WebDataset members of this sample, keyed by suffix."""
        return {
            ORIGINAL_MEMBER: self.original_png,
            MODIFIED_MEMBER: self.modified_png,
            TRUTH_MEMBER: self.truth.to_json(),
        }

    @classmethod
    def from_members(cls, key: str, members: dict[str, bytes]) -> PairSample:
        missing = [m for m in MEMBERS if m not in members]
        if missing:
            raise ValueError(f"sample {key!r} lacks members {missing}; has {sorted(members)}")
        return cls(
            key=key,
            original_png=members[ORIGINAL_MEMBER],
            modified_png=members[MODIFIED_MEMBER],
            truth=Truth.from_json(members[TRUTH_MEMBER]),
        )
