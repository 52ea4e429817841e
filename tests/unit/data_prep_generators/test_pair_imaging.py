"""Seeds, keys, PNG bytes and boxes shared by the generators."""

import zlib

import numpy as np
import pytest

from data_prep.imaging import (
    decode_png,
    diff_mask,
    encode_png,
    mask_box,
    pair_key,
    pair_rng,
    union_box,
)

pytestmark = pytest.mark.unit


def _chunk_types(png: bytes) -> list[bytes]:
    pos, out = 8, []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        out.append(png[pos + 4 : pos + 8])
        pos += 12 + length
    return out


def test_key_format_and_bad_seed():
    assert pair_key("clevr", 7, 42) == "clevr-7-00000042"
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        pair_key("clevr", -1, 0)
    with pytest.raises(ValueError, match="index must be a non-negative int"):
        pair_rng("chart", 0, 1.5)


def test_rng_depends_on_domain_seed_index_only():
    a = pair_rng("clevr", 3, 9).integers(1 << 30, size=4)
    assert np.array_equal(a, pair_rng("clevr", 3, 9).integers(1 << 30, size=4))
    assert not np.array_equal(a, pair_rng("clevr", 3, 10).integers(1 << 30, size=4))
    assert not np.array_equal(a, pair_rng("chart", 3, 9).integers(1 << 30, size=4))


def test_png_has_no_metadata_and_roundtrips():
    img = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    png = encode_png(img)
    assert _chunk_types(png) == [b"IHDR", b"IDAT", b"IEND"]
    assert png == encode_png(img.copy())
    assert np.array_equal(decode_png(png), img)
    # the IDAT payload is plain zlib at the requested level
    assert zlib.decompress(png[41 : 41 + int.from_bytes(png[33:37], "big")])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        encode_png(img.astype(np.float32))


def test_boxes():
    mask = np.zeros((10, 12), dtype=bool)
    assert mask_box(mask) is None
    mask[2:5, 3:7] = True
    assert mask_box(mask) == (3, 2, 7, 5)
    assert union_box([(3, 2, 7, 5), (0, 4, 4, 9)]) == (0, 2, 7, 9)
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[1, 2, 0] = 5
    assert diff_mask(a, b).sum() == 1
    assert diff_mask(a, b, threshold=5).sum() == 0
