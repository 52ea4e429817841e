"""Photo sources for the real-image domain: a user folder or the photos bundled with packages.

Bundled (all load offline, from files inside the installed packages; nothing is fetched):
scikit-image's colour photos (astronaut, coffee, chelsea, rocket, motorcycle, immuno-
histochemistry, retina), scikit-learn's sample images (china, flower) and matplotlib's
grace_hopper.jpg. scikit-image images that need a download (e.g. lily, kidney) are not used,
nor the Hubble deep field (a copied patch of star field is too hard to spot).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import Image

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_SKIMAGE_FILES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "retina.jpg",
)


def bundled_photos() -> list[tuple[str, Path]]:
    """(name, path) of every bundled photo present in this environment."""
    out = []
    for fname in _SKIMAGE_FILES:
        out.append((f"skimage/{Path(fname).stem}", _package_dir("skimage") / "data" / fname))
    for fname in ("china.jpg", "flower.jpg"):
        path = _package_dir("sklearn") / "datasets" / "images" / fname
        out.append((f"sklearn/{Path(fname).stem}", path))
    mpl_file = _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    out.append(("matplotlib/grace_hopper", mpl_file))
    return [(name, path) for name, path in out if path.is_file()]


def _package_dir(name: str) -> Path:
    """Install folder of a package, found without importing it (sklearn imports slowly)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent") / name
    return Path(spec.submodule_search_locations[0])


def folder_photos(photo_dir: str | Path) -> list[tuple[str, Path]]:
    """(relative name, path) of the photos under `photo_dir`, sorted; ValueError if none."""
    root = Path(photo_dir)
    if not root.is_dir():
        raise ValueError(
            f"photo_dir={str(photo_dir)!r} is not a directory; pass a folder of photos"
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise ValueError(
            f"photo_dir={str(photo_dir)!r} holds no photos ({', '.join(PHOTO_SUFFIXES)})"
        )
    return [(p.relative_to(root).as_posix(), p) for p in files]


@lru_cache(maxsize=4)
def photo_list(photo_dir: str | None) -> tuple[tuple[str, Path], ...]:
    """The photo set for an options value of photo_dir (None = bundled)."""
    photos = bundled_photos() if photo_dir is None else folder_photos(photo_dir)
    if not photos:
        raise ValueError("no bundled photos found (scikit-image data missing?); set photo_dir")
    return tuple(photos)


@lru_cache(maxsize=16)
def load_photo(path: Path) -> Image.Image:
    """The photo as an RGB PIL image (cached per process)."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    if min(rgb.size) < 16:
        raise ValueError(f"photo {path} is only {rgb.size[0]}x{rgb.size[1]}; need >= 16x16")
    return rgb
