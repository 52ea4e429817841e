"""Qwen2.5-VL image patching: shapes for several sizes and pixel budgets, equal to HF's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from vzero_nemo.models.image import ImageSpec, image_to_patches, num_image_tokens, smart_resize
from vzero_nemo.models.sizes import dims_for

pytestmark = pytest.mark.unit


def _spec(size: str, min_pixels: int, max_pixels: int) -> ImageSpec:
    return ImageSpec.from_dims(dims_for(size).vision, min_pixels, max_pixels)


@pytest.mark.parametrize(
    "size, hw, pixels, grid, tokens",
    [
        ("tiny", (48, 48), (48 * 48, 48 * 48), (6, 6), 9),  # 3x3 cells of 16 px, unresized
        ("tiny", (100, 61), (32 * 32, 128 * 128), (12, 8), 24),
        ("tiny", (300, 300), (16 * 16, 64 * 64), (8, 8), 16),  # shrunk to max_pixels
        ("tiny", (10, 20), (48 * 48, 96 * 96), (6, 10), 15),  # grown to min_pixels
        ("7b", (240, 320), (256 * 784, 1024 * 784), (28, 38), 266),
        ("72b", (37, 500), (56 * 56, 1280 * 784), (2, 36), 18),
    ],
)
def test_patch_shapes_match_hf_processor(size, hw, pixels, grid, tokens):
    spec = _spec(size, *pixels)
    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    pixel_values, thw = image_to_patches(image, spec)
    p = spec.patch_size
    assert thw.tolist() == [1, *grid]
    assert pixel_values.shape == (grid[0] * grid[1], 3 * 2 * p * p)
    assert pixel_values.dtype == torch.float32
    assert num_image_tokens(thw, spec) == tokens
    h, w = smart_resize(*hw, spec)
    assert h % spec.factor == 0 and w % spec.factor == 0
    assert pixels[0] <= h * w <= pixels[1]
    hf = Qwen2VLImageProcessorPil(
        patch_size=p,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=pixels[0],
        max_pixels=pixels[1],
    )
    ref = hf(images=[image], return_tensors="pt")
    assert ref["image_grid_thw"].tolist() == [thw.tolist()]
    assert torch.equal(pixel_values, ref["pixel_values"])


def test_pil_and_array_inputs_agree():
    spec = _spec("tiny", 48 * 48, 48 * 48)
    array = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    a, _ = image_to_patches(array, spec)
    b, _ = image_to_patches(Image.fromarray(array).convert("RGBA"), spec)
    assert torch.equal(a, b)


def test_patch_order_groups_merged_tokens():
    # A 16x16 image with a distinct constant per 8-px patch: each run of 4 consecutive rows
    # of pixel_values is one 2x2 merge group, in raster order of the groups.
    spec = _spec("tiny", 16 * 16, 16 * 16)
    image = np.zeros((16, 16, 3), np.uint8)
    for r in range(2):
        for c in range(2):
            image[8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 60 * (2 * r + c)
    pixel_values, thw = image_to_patches(image, spec)
    assert thw.tolist() == [1, 2, 2]
    per_channel = pixel_values.reshape(4, 3, 2 * 8 * 8)  # (patch, channel, frame*py*px)
    assert torch.all(per_channel.amax(-1) == per_channel.amin(-1))  # one colour per patch
    firsts = pixel_values[:, 0]
    assert torch.all(firsts[1:] > firsts[:-1])  # patches (0,0), (0,1), (1,0), (1,1)


def test_bad_inputs():
    with pytest.raises(ValueError, match="max_pixels"):
        _spec("tiny", 64 * 64, 32 * 32)
    with pytest.raises(ValueError, match="one merged token"):
        _spec("7b", 20 * 20, 64 * 64)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 500, _spec("tiny", 256, 4096))
    with pytest.raises(ValueError, match="uint8"):
        image_to_patches(np.zeros((8, 8), np.float32), _spec("tiny", 256, 4096))
