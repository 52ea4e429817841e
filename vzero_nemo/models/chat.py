"""Render HF-style chat messages into Qwen2.5-VL prompt tokens plus image patches.

    from vzero_nemo.models.chat import render_chat
    prompt = render_chat(messages, tokenizer, image, cfg.model)   # PromptInputs

`messages` is a list of {"role": "system" | "user" | "assistant", "content": str | list of
{"type": "image"} / {"type": "text", "text": str}} holding exactly one image entry. A
tokenizer with a chat template (a real checkpoint's) renders the text with it
(`apply_chat_template`); without one (the tiny tokenizer) the text is the built-in copy of
Qwen2.5-VL's chat template (`QWEN25VL_CHAT_TEMPLATE`, tested equal): a default system turn
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
from vzero_nemo.models.sizes import model_dims
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

QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The chat template of the published Qwen2.5-VL-*-Instruct checkpoints (their
tokenizer_config.json / chat_template.json), written into Qwen-style test checkpoints."""


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
        model_dims(model_cfg).vision, model_cfg.min_pixels, model_cfg.max_pixels
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


def render_chat_text(
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    tokenizer: VLTokenizer | None = None,
) -> str:
    """The chat text with one `<|image_pad|>` standing for the image: `tokenizer`'s own chat
    template when it has one (a real checkpoint's), else the built-in Qwen2.5-VL rendering."""
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
    if tokenizer is not None and tokenizer.chat_template is not None:
        return _apply_template(messages, add_generation_prompt, tokenizer)
    return "".join(pieces)


def _apply_template(
    messages: Sequence[dict[str, Any]], add_generation_prompt: bool, tokenizer: VLTokenizer
) -> str:
    text = tokenizer.hf.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str) or text.count(f"{VISION_START}{IMAGE_PAD}{VISION_END}") != 1:
        raise ValueError(
            f"the chat template of tokenizer {tokenizer.name!r} does not render the image as "
            f"{VISION_START}{IMAGE_PAD}{VISION_END} exactly once; use a Qwen2.5-VL checkpoint's "
            "tokenizer (or one without a chat template for the built-in rendering)"
        )
    return text


def render_chat(
    messages: Sequence[dict[str, Any]],
    tokenizer: VLTokenizer,
    image: Image.Image | np.ndarray | ImagePatches,
    model_cfg: ModelConfig,
    *,
    add_generation_prompt: bool = True,
) -> PromptInputs:
    """Tokens + patches of one prompt; see the module docstring for the layout."""
    text = render_chat_text(messages, add_generation_prompt, tokenizer)
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
