"""Qwen2.5-VL image preprocessing: smart resize, normalise, cut into flattened patches.

The same arithmetic as transformers' `Qwen2VLImageProcessorPil` (tested equal): the image is
resized (PIL bicubic) so both sides are multiples of `patch_size * spatial_merge_size` and its
area lies in [min_pixels, max_pixels] (from `ModelConfig`), scaled to [0, 1], normalised with
the OpenAI CLIP mean/std, repeated to `temporal_patch_size` frames and cut into patches
ordered so that each consecutive run of `spatial_merge_size**2` patches is one merged token.

    pixel_values: (grid_t * grid_h * grid_w, 3 * temporal_patch_size * patch_size**2) float32
    image_grid_thw: (3,) long = (grid_t, grid_h, grid_w), in patches
    image tokens in the prompt = grid_t * grid_h * grid_w / spatial_merge_size**2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vzero_nemo.models.sizes import VisionDims

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageSpec:
    patch_size: int
    temporal_patch_size: int
    spatial_merge_size: int
    min_pixels: int
    max_pixels: int

    @classmethod
    def from_dims(cls, vision: VisionDims, min_pixels: int, max_pixels: int) -> ImageSpec:
        spec = cls(
            patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size,
            spatial_merge_size=vision.spatial_merge_size,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        spec.validate()
        return spec

    @property
    def factor(self) -> int:
        """Side multiple of a resized image: one merged token's width in pixels."""
        return self.patch_size * self.spatial_merge_size

    @property
    def patch_dim(self) -> int:
        return 3 * self.temporal_patch_size * self.patch_size**2

    def validate(self) -> None:
        if self.min_pixels < self.factor**2:
            raise ValueError(
                f"model.min_pixels={self.min_pixels} is below one merged token "
                f"({self.factor}x{self.factor}={self.factor**2} px); raise it"
            )
        if self.max_pixels < self.min_pixels:
            raise ValueError(
                f"model.max_pixels={self.max_pixels} < model.min_pixels={self.min_pixels}; "
                "set max_pixels >= min_pixels"
            )


def smart_resize(height: int, width: int, spec: ImageSpec) -> tuple[int, int]:
    """Qwen2-VL's smart resize: (height, width) multiples of `spec.factor` with the area in
    [min_pixels, max_pixels] and the aspect ratio kept as closely as possible."""
    if min(height, width) < 1 or max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"image of {width}x{height} px is empty or its aspect ratio exceeds "
            f"{MAX_ASPECT_RATIO}; crop or pad it first"
        )
    factor = spec.factor
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > spec.max_pixels:
        beta = math.sqrt((height * width) / spec.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < spec.min_pixels:
        beta = math.sqrt(spec.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _as_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image array must be uint8 HxWx3, got {image.dtype} {image.shape}; convert it "
                "or pass a PIL image"
            )
        return Image.fromarray(image, mode="RGB")
    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL image or a uint8 HxWx3 array, got {type(image)}")
    return image.convert("RGB") if image.mode != "RGB" else image


def image_to_patches(
    image: Image.Image | np.ndarray, spec: ImageSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values (N, patch_dim) float32, image_grid_thw (3,) long) of one image."""
    rgb = _as_rgb(image)
    height, width = smart_resize(rgb.height, rgb.width, spec)
    if (height, width) != (rgb.height, rgb.width):
        rgb = rgb.resize((width, height), resample=Image.Resampling.BICUBIC)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    pixels = (pixels - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    frames = np.repeat(pixels.transpose(2, 0, 1)[None], spec.temporal_patch_size, axis=0)
    p, m, tps = spec.patch_size, spec.spatial_merge_size, spec.temporal_patch_size
    grid_h, grid_w = height // p, width // p
    patches = frames.reshape(1, tps, 3, grid_h // m, m, p, grid_w // m, m, p)
    # -> (t, h-group, w-group, h-in-group, w-in-group, channel, frame, py, px)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = np.ascontiguousarray(patches.reshape(grid_h * grid_w, spec.patch_dim))
    return torch.from_numpy(flat), torch.tensor([1, grid_h, grid_w], dtype=torch.long)


def num_image_tokens(image_grid_thw: torch.Tensor, spec: ImageSpec) -> int:
    """Language tokens (<|image_pad|>) one image occupies after the 2x2 merge."""
    return int(image_grid_thw.prod()) // spec.spatial_merge_size**2
