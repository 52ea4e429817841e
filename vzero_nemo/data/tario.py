"""Reading pair shards (plain tarfile) and decoding their PNGs; shared by the reader and verify.

A shard is read whole into memory (a 100-pair shard of 320x240 PNGs is a few MB), checked
against the manifest's sha256, split into samples and checked for the schema's members. Any
problem raises `CorruptShardError` naming the shard, so callers can skip or report it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pyspng
from PIL import Image

from vzero_nemo.data.schema import MEMBERS

RawSample = tuple[str, dict[str, bytes]]


class CorruptShardError(Exception):
    """A shard that cannot be read as a complete pair shard."""

    def __init__(self, shard: str, reason: str) -> None:
        super().__init__(f"corrupt shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def split_member_name(name: str) -> tuple[str, str]:
    """'dir/clevr_000000003.original.png' -> ('clevr_000000003', 'original.png') (WebDataset rule:
    the key ends at the first dot of the file's base name)."""
    directory, _, base = name.rpartition("/")
    key, dot, suffix = base.partition(".")
    if not dot or not key:
        raise ValueError(f"member {name!r} has no '<key>.<suffix>' form")
    return (f"{directory}/{key}" if directory else key), suffix


def parse_tar_bytes(shard: str, data: bytes) -> list[RawSample]:
    """Split tar bytes into (key, {suffix: bytes}) samples in file order."""
    samples: list[RawSample] = []
    index: dict[str, int] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                key, suffix = split_member_name(member.name)
                if key not in index:
                    index[key] = len(samples)
                    samples.append((key, {}))
                members = samples[index[key]][1]
                if suffix in members:
                    raise ValueError(f"duplicate member {member.name!r}")
                # Slice the in-memory bytes directly (faster than tar.extractfile().read()).
                payload = data[member.offset_data : member.offset_data + member.size]
                if len(payload) != member.size:
                    raise EOFError(f"member {member.name!r} is truncated")
                members[suffix] = payload
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise CorruptShardError(shard, f"{type(e).__name__}: {e}") from e
    for key, members in samples:
        missing = [m for m in MEMBERS if m not in members]
        if missing:
            raise CorruptShardError(shard, f"sample {key!r} lacks members {missing}")
    return samples


def read_shard(
    path: str | Path, *, expected_sha256: str | None = None, expected_samples: int | None = None
) -> list[RawSample]:
    """Read one shard whole; raise CorruptShardError on a checksum, tar or member problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorruptShardError(path.name, f"cannot read: {e}") from e
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise CorruptShardError(
                path.name, f"sha256 {digest[:12]}.. != manifest {expected_sha256[:12]}.."
            )
    samples = parse_tar_bytes(path.name, data)
    if expected_samples is not None and len(samples) != expected_samples:
        raise CorruptShardError(
            path.name, f"{len(samples)} samples, manifest says {expected_samples}"
        )
    return samples


class ImageDecodeError(ValueError):
    """PNG bytes that do not decode."""


def decode_png_array(png: bytes) -> np.ndarray:
    """Decode PNG bytes to a uint8 array of shape (H, W, 3) with libspng (about 1.6x faster
    than Pillow on photos, which makes decoding, the reader's main cost, cheaper)."""
    try:
        return pyspng.load(png, format="RGB")
    except RuntimeError as e:
        raise ImageDecodeError(str(e)) from e


def decode_png_rgb(png: bytes) -> Image.Image:
    """Decode PNG bytes to an RGB PIL image."""
    return Image.fromarray(decode_png_array(png))


def decode_png_pil(png: bytes) -> Image.Image:
    """Pillow's decoder (reference for tests and a second opinion in verify)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")
