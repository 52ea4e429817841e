"""Batching: padding, Qwen2.5-VL M-RoPE positions (get_rope_index semantics), masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.batch import causal_padding_mask, collate_prompts
from vzero_nemo.models.chat import render_chat
from vzero_nemo.models.tokenizer import tiny_tokenizer

pytestmark = pytest.mark.unit

CFG = ModelConfig(size="tiny", min_pixels=48 * 48, max_pixels=96 * 96)


def _prompt(text: str, hw=(48, 48), seed=0):
    image = np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return render_chat(messages, tiny_tokenizer(), image, CFG)


PROMPTS = [
    _prompt("Who is the spy?"),
    _prompt("You are player 2 of 4, civilian. Describe one object.", hw=(96, 64), seed=1),
    _prompt("Hi", hw=(64, 96), seed=2),
]


def test_image_positions_are_grid_coordinates():
    tok = tiny_tokenizer()
    batch = collate_prompts(PROMPTS[:1], tok, CFG)
    ids, pos = batch.input_ids[0], batch.position_ids[:, 0]
    first = int((ids == tok.image_pad_id).nonzero()[0])
    image = pos[:, first : first + 9]
    rows, cols = torch.arange(3).repeat_interleave(3), torch.arange(3).repeat(3)
    assert torch.equal(image[0], torch.full((9,), first))  # temporal axis: one frame
    assert torch.equal(image[1], first + rows)
    assert torch.equal(image[2], first + cols)
    # Text before the image counts 0.. on all axes; after it, continue at max + 1.
    assert torch.equal(pos[:, :first], torch.arange(first).expand(3, -1))
    assert torch.equal(pos[:, first + 9], torch.full((3,), first + 3))
    n = len(PROMPTS[0])
    assert int(batch.next_position[0]) == n - 9 + 3  # 9 image tokens span 3 positions


@pytest.mark.parametrize("side", ["left", "right"])
def test_mixed_lengths_match_unpadded_prompts(side):
    tok = tiny_tokenizer()
    batch = collate_prompts(PROMPTS, tok, CFG, padding_side=side)
    lengths = [len(p) for p in PROMPTS]
    width = max(lengths)
    assert batch.input_ids.shape == (3, width)
    assert batch.lengths.tolist() == lengths
    assert batch.image_grid_thw.tolist() == [[1, 6, 6], [1, 12, 8], [1, 8, 12]]
    assert batch.pixel_values.shape == (36 + 96 + 96, 384)
    for row, prompt in enumerate(PROMPTS):
        n = lengths[row]
        real = slice(width - n, width) if side == "left" else slice(0, n)
        pads = ~batch.attention_mask[row]
        assert batch.attention_mask[row].sum() == n
        assert torch.equal(batch.input_ids[row, real], prompt.input_ids)
        assert torch.all(batch.input_ids[row][pads] == tok.pad_id)
        assert torch.all(batch.position_ids[:, row][:, pads] == 0)
        alone = collate_prompts([prompt], tok, CFG)
        assert torch.equal(batch.position_ids[:, row, real], alone.position_ids[:, 0])
        assert batch.next_position[row] == alone.next_position[0]
    if side == "left":
        assert torch.all(batch.attention_mask[:, -1])


def test_next_position_is_the_appended_tokens_position():
    tok = tiny_tokenizer()
    batch = collate_prompts(PROMPTS, tok, CFG)
    extended = collate_prompts([p.extend([7, 8]) for p in PROMPTS], tok, CFG)
    for k in range(2):
        want = (batch.next_position + k).expand(3, -1)
        assert torch.equal(extended.position_ids[:, :, -2 + k], want)


def test_rows_is_the_micro_batch_of_those_prompts():
    tok = tiny_tokenizer()
    batch = collate_prompts(PROMPTS, tok, CFG)
    part = batch.rows(1, 3)
    width = batch.input_ids.shape[1]
    alone = collate_prompts(PROMPTS[1:], tok, CFG)
    assert part.input_ids.shape == (2, width)
    assert torch.equal(part.pixel_values, alone.pixel_values)
    assert torch.equal(part.position_ids[..., -alone.input_ids.shape[1] :], alone.position_ids)
    assert torch.equal(part.image_grid_thw, alone.image_grid_thw)
    with pytest.raises(ValueError, match="outside"):
        batch.rows(2, 5)


def test_causal_padding_mask():
    valid = torch.tensor([[False, True, True], [True, True, True]])
    mask = causal_padding_mask(valid)
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.bool
    allowed = ~mask[:, 0]
    assert allowed[1].tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert allowed[0].tolist() == [[False, False, False], [False, True, False], [False, True, True]]
    with pytest.raises(ValueError, match="bool"):
        causal_padding_mask(valid.long())


def test_empty_batch_and_bad_side():
    with pytest.raises(ValueError, match="no prompts"):
        collate_prompts([], tiny_tokenizer(), CFG)
    with pytest.raises(ValueError, match="padding_side"):
        collate_prompts(PROMPTS, tiny_tokenizer(), CFG, padding_side="middle")
