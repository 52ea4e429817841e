"""Pad rendered prompts into a batch with Qwen2.5-VL's multimodal rotary positions (M-RoPE).

    from vzero_nemo.models.batch import collate_prompts
    batch = collate_prompts(prompts, tokenizer, cfg.model)            # left padding
    logits = model(batch.input_ids, batch.position_ids, batch.causal_mask(),
                   **batch.vision_inputs())

Padding is on the LEFT by default (generation appends to the right edge of every row at once);
`padding_side="right"` is available for scoring. Pad tokens are <|endoftext|>, never attended
to, and get position 0. Positions are computed exactly as transformers'
`Qwen2_5_VLModel.get_rope_index` with the padding mask (the function is reused, not copied):
text tokens advance all three axes together, the image's tokens take (t, h, w) grid
coordinates offset by the text before it, and text after the image continues from the largest
image position + 1. Megatron's forward receives these positions explicitly.

Generation: the k-th sampled token (k = 0, 1, ...) of row b has position
`next_position[b] + k` on all three axes.

Images: each DISTINCT image of the batch is stored once (`pixel_values`, `image_grid_thw`)
and `image_of_row[b]` says which one row b shows, so the model encodes it once however many
rows show it (the observer's votes of a game, the civilians of a game). Prompts show the same
image when they hold the same pixel tensor (`render_chat` of one `ImagePatches`, or
`PromptInputs.extend`); equal pixels in two separate tensors count as two images.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.models.sizes import model_dims
from vzero_nemo.models.tokenizer import VLTokenizer


@dataclass(frozen=True, slots=True)
class PromptBatch:
    """A padded batch of B prompts of at most T tokens.

    input_ids: (B, T) long, padded with the tokenizer's pad id.
    attention_mask: (B, T) bool, True on real tokens.
    position_ids: (3, B, T) long M-RoPE (temporal, height, width) positions; 0 on padding.
    next_position: (B,) long, position of the first token after each row's last real token.
    pixel_values: (sum of N_patches, patch_dim) float32, each distinct image once, in order
        of first use.
    image_grid_thw: (I, 3) long, the grid of each distinct image.
    lengths: (B,) long, real tokens per row.
    image_of_row: (B,) long, the distinct image each row shows (index into image_grid_thw).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    next_position: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    lengths: torch.Tensor
    image_of_row: torch.Tensor

    @property
    def row_grid_thw(self) -> torch.Tensor:
        """(B, 3) the grid of each row's image."""
        return self.image_grid_thw[self.image_of_row]

    def vision_inputs(self) -> dict[str, torch.Tensor]:
        """The model's image keyword arguments: each distinct image once + the row map."""
        return {
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
            "image_of_row": self.image_of_row,
        }

    def row_pixel_values(self) -> torch.Tensor:
        """(sum over ROWS of N_patches, patch_dim): one image per row, in row order, as
        transformers' Qwen2.5-VL takes them (with `row_grid_thw`)."""
        return select_images(self.pixel_values, self.image_grid_thw, self.image_of_row)[0]

    def causal_mask(self) -> torch.Tensor:
        """(B, 1, T, T) bool Megatron attention mask (True = masked): causal + padding."""
        return causal_padding_mask(self.attention_mask)

    def rows(self, start: int, stop: int) -> PromptBatch:
        """Rows [start, stop) as a batch of the same width (a micro-batch) holding only the
        images those rows show."""
        if not 0 <= start < stop <= self.input_ids.shape[0]:
            raise ValueError(f"rows [{start}, {stop}) outside a batch of {self.input_ids.shape[0]}")
        images, image_of_row = distinct_images(self.image_of_row[start:stop])
        pixel_values, image_grid_thw = select_images(self.pixel_values, self.image_grid_thw, images)
        return PromptBatch(
            input_ids=self.input_ids[start:stop],
            attention_mask=self.attention_mask[start:stop],
            position_ids=self.position_ids[:, start:stop],
            next_position=self.next_position[start:stop],
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            lengths=self.lengths[start:stop],
            image_of_row=image_of_row,
        )


def distinct_images(image_of_row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the images rows show, each once, in order of first use [I'], each row's index into
    them [B])."""
    first_use: dict[int, int] = {}
    for image in image_of_row.tolist():
        first_use.setdefault(image, len(first_use))
    remap = torch.tensor([first_use[i] for i in image_of_row.tolist()], dtype=torch.long)
    return torch.tensor(list(first_use), dtype=torch.long), remap


def select_images(
    pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values, image_grid_thw) of `images` (indices into `image_grid_thw`), in that
    order; an index may repeat."""
    patches_I = image_grid_thw.prod(dim=-1)
    starts_I = torch.cumsum(patches_I, 0) - patches_I
    pieces = [
        pixel_values[int(starts_I[i]) : int(starts_I[i] + patches_I[i])] for i in images.tolist()
    ]
    return torch.cat(pieces), image_grid_thw[images]


def causal_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool real-token mask -> (B, 1, T, T) bool, True where attention is forbidden:
    future keys and padding keys, for every query (outputs at padding queries are unused)."""
    if attention_mask.dtype != torch.bool or attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be a (B, T) bool tensor, got {attention_mask.dtype} "
            f"{tuple(attention_mask.shape)}"
        )
    seq = attention_mask.shape[1]
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=attention_mask.device), 1)
    return (future[None] | ~attention_mask[:, None, :])[:, None]


def _rope_index_owner(spatial_merge_size: int, tokens_per_second: int) -> types.SimpleNamespace:
    """The attributes transformers' `get_rope_index` reads from its model."""
    vision = types.SimpleNamespace(
        spatial_merge_size=spatial_merge_size, tokens_per_second=tokens_per_second
    )
    owner = types.SimpleNamespace(config=types.SimpleNamespace(vision_config=vision))
    owner.get_vision_position_ids = types.MethodType(Qwen2_5_VLModel.get_vision_position_ids, owner)
    return owner


def mrope_position_ids(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    image_grid_thw: torch.Tensor,
    *,
    image_token_id: int,
    spatial_merge_size: int,
    tokens_per_second: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """((3, B, T) positions, (B,) next position) for a padded batch of image+text rows."""
    owner = _rope_index_owner(spatial_merge_size, tokens_per_second)
    mm_token_type_ids = (input_ids == image_token_id).to(torch.int)
    position_ids, deltas = Qwen2_5_VLModel.get_rope_index(
        owner,
        input_ids,
        mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask.to(torch.long),
    )
    next_position = attention_mask.sum(-1) + deltas.reshape(-1)
    return position_ids, next_position


def collate_prompts(
    prompts: Sequence[PromptInputs],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    *,
    padding_side: Literal["left", "right"] = "left",
) -> PromptBatch:
    """Pad `prompts` (one image each) into a `PromptBatch`."""
    if not prompts:
        raise ValueError("collate_prompts got no prompts")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side={padding_side!r}; use 'left' or 'right'")
    lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    seq = int(lengths.max())
    input_ids = torch.full((len(prompts), seq), tokenizer.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), seq), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        n = len(prompt)
        cols = slice(seq - n, seq) if padding_side == "left" else slice(0, n)
        input_ids[row, cols] = prompt.input_ids
        attention_mask[row, cols] = True
    # Distinct images by tensor identity (all prompts are alive here, so ids are unique).
    first_use: dict[int, int] = {}
    images: list[PromptInputs] = []
    for prompt in prompts:
        if id(prompt.pixel_values) not in first_use:
            first_use[id(prompt.pixel_values)] = len(images)
            images.append(prompt)
    image_of_row = torch.tensor([first_use[id(p.pixel_values)] for p in prompts])
    image_grid_thw = torch.stack([p.image_grid_thw for p in images])
    vision = model_dims(model_cfg).vision
    position_ids, next_position = mrope_position_ids(
        input_ids,
        attention_mask,
        image_grid_thw[image_of_row],
        image_token_id=tokenizer.image_pad_id,
        spatial_merge_size=vision.spatial_merge_size,
        tokens_per_second=vision.tokens_per_second,
    )
    return PromptBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        next_position=next_position,
        pixel_values=torch.cat([p.pixel_values for p in images]),
        image_grid_thw=image_grid_thw,
        lengths=lengths,
        image_of_row=image_of_row,
    )
