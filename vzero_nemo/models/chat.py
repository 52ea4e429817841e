"""Render HF-style chat messages into Qwen2.5-VL prompt tokens plus image patches.

    from vzero_nemo.models.chat import render_chat
    prompt = render_chat(messages, tokenizer, image, cfg.model)   # PromptInputs

`messages` is a list of {"role": "system" | "user" | "assistant", "content": str | list of
{"type": "image"} / {"type": "text", "text": str}} holding exactly one image entry. The text is
Qwen2.5-VL's chat template (as its `chat_template.json`): a default system turn
"You are a helpful assistant." when the first message is not a system message, each turn
`<|im_start|>{role}\n{content}<|im_end|>\n`, the image as
`<|vision_start|>` + N x `<|image_pad|>` + `<|vision_end|>` (N = merged patch groups), and,
with `add_generation_prompt`, a trailing `<|im_start|>assistant\n`. Batch prompts with
`vzero_nemo.models.batch.collate_prompts`.

An image shown in several prompts is patched once with `image_patches`; prompts rendered from
that `ImagePatches` share its pixel tensor, and a batch of them encodes the image once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.image import ImageSpec, image_to_patches, num_image_tokens
from vzero_nemo.models.sizes import dims_for
from vzero_nemo.models.tokenizer import (
    DEFAULT_SYSTEM,
    IM_END,
    IM_START,
    IMAGE_PAD,
    VISION_END,
    VISION_START,
    VLTokenizer,
)

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class PromptInputs:
    """One rendered prompt (unpadded).

    input_ids: (T,) long, the chat-template tokens with the image expanded.
    pixel_values: (N_patches, 3 * temporal_patch_size * patch_size**2) float32.
    image_grid_thw: (3,) long, (grid_t, grid_h, grid_w) in patches.
    """

    input_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.numel())

    def extend(self, token_ids: Sequence[int] | torch.Tensor) -> PromptInputs:
        """This prompt followed by `token_ids` (e.g. a sampled response, for log-probs)."""
        extra = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
        ids = torch.cat([self.input_ids, extra])
        return PromptInputs(ids, self.pixel_values, self.image_grid_thw)


@dataclass(frozen=True, slots=True)
class ImagePatches:
    """An image already cut into patches (`image_patches`), to render several prompts with."""

    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor


def image_patches(image: Image.Image | np.ndarray, model_cfg: ModelConfig) -> ImagePatches:
    """The patches of `image` for `model_cfg`."""
    return ImagePatches(*image_to_patches(image, image_spec(model_cfg)))


def image_spec(model_cfg: ModelConfig) -> ImageSpec:
    """Patching parameters of `model_cfg` (its size's vision tower + min/max pixels)."""
    return ImageSpec.from_dims(
        dims_for(model_cfg.size).vision, model_cfg.min_pixels, model_cfg.max_pixels
    )


def _content_parts(message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValueError(
            f"messages[{index}]['content'] must be a str or a list of parts, got {type(content)}"
        )
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("image", "text") or (
            kind == "text" and not isinstance(part.get("text"), str)
        ):
            raise ValueError(
                f"messages[{index}] has part {part!r}; parts are {{'type': 'image'}} or "
                "{'type': 'text', 'text': str}"
            )
    return content


def render_chat_text(messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The chat-template text with one `<|image_pad|>` standing for the image."""
    if not messages:
        raise ValueError("messages is empty; give at least one user message")
    pieces: list[str] = []
    if messages[0].get("role") != "system":
        pieces.append(f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n")
    num_images = 0
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"messages[{i}] has role {role!r}; use one of {ROLES}")
        body = []
        for part in _content_parts(message, i):
            if part["type"] == "image":
                num_images += 1
                body.append(f"{VISION_START}{IMAGE_PAD}{VISION_END}")
            else:
                body.append(part["text"])
        pieces.append(f"{IM_START}{role}\n{''.join(body)}{IM_END}\n")
    if num_images != 1:
        raise ValueError(f"messages hold {num_images} image entries; exactly one is supported")
    if add_generation_prompt:
        pieces.append(f"{IM_START}assistant\n")
    return "".join(pieces)


def render_chat(
    messages: Sequence[dict[str, Any]],
    tokenizer: VLTokenizer,
    image: Image.Image | np.ndarray | ImagePatches,
    model_cfg: ModelConfig,
    *,
    add_generation_prompt: bool = True,
) -> PromptInputs:
    """Tokens + patches of one prompt; see the module docstring for the layout."""
    text = render_chat_text(messages, add_generation_prompt)
    spec = image_spec(model_cfg)
    patches = image if isinstance(image, ImagePatches) else image_patches(image, model_cfg)
    pixel_values, grid_thw = patches.pixel_values, patches.image_grid_thw
    num_pads = num_image_tokens(grid_thw, spec)
    if text.count(IMAGE_PAD) != 1:
        raise ValueError(f"message text must not contain {IMAGE_PAD!r} itself")
    ids = tokenizer.encode(text.replace(IMAGE_PAD, IMAGE_PAD * num_pads))
    input_ids = torch.tensor(ids, dtype=torch.long)
    found = int((input_ids == tokenizer.image_pad_id).sum())
    assert found == num_pads, f"{found} image tokens encoded, {num_pads} expected"
    return PromptInputs(input_ids, pixel_values, grid_thw)
