"""Options of the CLEVR-style generator (one dataclass, validated on construction)."""

from __future__ import annotations

from dataclasses import dataclass

from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_MATERIALS, CLEVR_SHAPES, CLEVR_SIZES

CHANGEABLE_ATTRIBUTES = ("color", "shape", "material", "size")
LAYOUTS = ("free", "grid")
BACKENDS = ("pillow", "blender")


@dataclass(kw_only=True, slots=True)
class ClevrOptions:
    """How a CLEVR-style pair is drawn and edited."""

    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    min_objects: int = 4
    """Fewest objects in a scene."""
    max_objects: int = 6
    """Most objects in a scene."""
    num_changes: int = 2
    """Objects edited in the spy image (each changes every attribute in `change_attributes`)."""
    change_attributes: tuple[str, ...] = ("color", "shape")
    """Attributes an edited object changes; a subset of color, shape, material, size."""
    sizes: tuple[str, ...] = CLEVR_SIZES
    """Sizes objects are drawn with (e.g. only "large" so shapes stay legible in 16-px cells)."""
    materials: tuple[str, ...] = CLEVR_MATERIALS
    """Materials objects are drawn with (e.g. only "rubber": no mirror highlights)."""
    layout: str = "free"
    """"free": objects anywhere on the floor, perspective camera (CLEVR). "grid": one object
    per cell of a `cell_size` grid aligned with a model's patch grid, orthographic camera."""
    cell_size: int = 16
    """Grid layout only: cell edge in pixels; width and height must be multiples of it."""
    supersample: int = 2
    """Render at this many samples per pixel edge, then average (anti-aliasing)."""
    min_visible_fraction: float = 0.5
    """An object counts as visible when at least this fraction of its silhouette is unoccluded."""
    shadows: bool = True
    """Draw soft ground shadows."""
    backend: str = "pillow"
    """"pillow": the numpy ray caster here. "blender": the same scene rendered by Cycles."""
    blender_samples: int = 64
    """Blender backend only: Cycles samples per pixel."""
    png_compress_level: int = 6
    """zlib level of the PNG encoder (0-9)."""

    def __post_init__(self) -> None:
        self.change_attributes = tuple(self.change_attributes)
        if self.width < 16 or self.height < 16:
            raise ValueError(
                f"width x height must be at least 16x16, got {self.width}x{self.height}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if self.max_objects > 10:
            raise ValueError(f"max_objects={self.max_objects} is too many; use at most 10")
        if not 1 <= self.num_changes <= self.min_objects:
            raise ValueError(
                f"num_changes={self.num_changes} must be in [1, min_objects={self.min_objects}]"
            )
        self.sizes, self.materials = tuple(self.sizes), tuple(self.materials)
        for name, values, allowed in (
            ("sizes", self.sizes, CLEVR_SIZES),
            ("materials", self.materials, CLEVR_MATERIALS),
        ):
            if not values or any(v not in allowed for v in values):
                raise ValueError(f"{name}={values!r}: pick a non-empty subset of {allowed}")
        for attr, values in (("size", self.sizes), ("material", self.materials)):
            if attr in self.change_attributes and len(values) < 2:
                raise ValueError(
                    f"change_attributes includes {attr!r} but only {values!r} may be drawn; "
                    "allow at least two values"
                )
        bad = [a for a in self.change_attributes if a not in CHANGEABLE_ATTRIBUTES]
        if bad or not self.change_attributes:
            raise ValueError(
                f"change_attributes={self.change_attributes!r}: pick a non-empty subset of "
                f"{CHANGEABLE_ATTRIBUTES}"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r}; expected one of {LAYOUTS}")
        if self.layout == "grid":
            self._check_grid()
        if not 1 <= self.supersample <= 4:
            raise ValueError(f"supersample={self.supersample} must be in 1..4")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(f"min_visible_fraction={self.min_visible_fraction} must be in (0, 1]")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}; expected one of {BACKENDS}")
        if self.blender_samples < 1:
            raise ValueError(f"blender_samples={self.blender_samples} must be >= 1")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level={self.png_compress_level} must be in 0..9")

    def _check_grid(self) -> None:
        if self.cell_size < 8:
            raise ValueError(f"cell_size={self.cell_size} must be >= 8 pixels")
        if self.width % self.cell_size or self.height % self.cell_size:
            raise ValueError(
                f"grid layout needs width and height divisible by cell_size={self.cell_size}, "
                f"got {self.width}x{self.height}"
            )
        if self.max_objects > self.grid_rows * self.grid_cols:
            raise ValueError(
                f"max_objects={self.max_objects} exceeds the {self.grid_rows}x{self.grid_cols} "
                f"grid; lower max_objects or enlarge the image"
            )

    @property
    def grid_rows(self) -> int:
        return self.height // self.cell_size

    @property
    def grid_cols(self) -> int:
        return self.width // self.cell_size


def vocabulary(attribute: str) -> tuple[str, ...]:
    """The CLEVR values of one attribute."""
    return {
        "color": CLEVR_COLORS,
        "shape": CLEVR_SHAPES,
        "material": CLEVR_MATERIALS,
        "size": CLEVR_SIZES,
    }[attribute]
