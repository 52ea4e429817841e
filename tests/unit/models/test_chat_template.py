"""A real checkpoint's chat template: the game's prompts through our renderer and through
transformers (`apply_chat_template`, and Qwen2.5-VL's processor), token ids compared.

The Qwen2.5-VL-style tokenizer of `random_checkpoint` has Qwen's special-token ids and chat
template (its BPE is the project's: no Qwen vocabulary ships here). Every prompt the game
builds (clue turns with earlier clues and own notes, observer votes; `full` and `compact`
styles; clevr / chart / real domains) must give the same ids (1) from the built-in renderer,
(2) from the tokenizer's own template (the path real checkpoints take), and (3) from
transformers' image processor + `apply_chat_template` + the processor's placeholder expansion,
whose pixel values must equal ours too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vzero_nemo.config import GameConfig, ModelConfig
from vzero_nemo.game.env import GameBatch
from vzero_nemo.game.synthetic import random_truths
from vzero_nemo.models.chat import QWEN25VL_CHAT_TEMPLATE, render_chat, render_chat_text
from vzero_nemo.models.tokenizer import IMAGE_PAD, QWEN25VL_SPECIAL_IDS, load_tokenizer

pytestmark = pytest.mark.unit

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 64


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    from vzero_nemo.models.random_checkpoint import qwen_style_tokenizer

    path = tmp_path_factory.mktemp("qwen_tokenizer")
    qwen_style_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_cfg(qwen_dir):
    return ModelConfig(
        size="7b", tokenizer_path=str(qwen_dir), min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS
    )


def _game_prompts(style: str, domain: str) -> list[list[dict]]:
    """Every distinct prompt of one played game (2 clue rounds, then the observer vote)."""
    cfg = dataclasses.replace(GameConfig(), prompt_style=style)
    env = GameBatch(random_truths(domain, 1, seed=3), cfg, seed=5)
    prompts: dict[str, list[dict]] = {}
    while not env.done:
        requests = env.pending_requests()
        for r in requests:
            prompts.setdefault(repr(r.messages), r.messages)
        env.submit(
            {
                r.request_id: "<think>A red cube, left.</think><answer>red cube</answer>"
                for r in requests
            }
        )
    return list(prompts.values())


GAME_PROMPTS = [
    m
    for style in ("full", "compact")
    for d in ("clevr", "chart", "real")
    for m in _game_prompts(style, d)
]


def test_tokenizer_is_qwen_style(model_cfg):
    tok = load_tokenizer(model_cfg)
    assert tok.special_ids == QWEN25VL_SPECIAL_IDS and len(tok) == 151665
    assert tok.chat_template == QWEN25VL_CHAT_TEMPLATE
    assert tok.encode("<|im_start|>user\nred cube<|im_end|>")[0] == 151644


def test_game_prompts_cover_every_turn_kind():
    texts = [render_chat_text(m) for m in GAME_PROMPTS]
    assert len(GAME_PROMPTS) >= 2 * 3 * 9  # 8 clue turns + the vote per style and domain
    assert any("<|im_start|>system" in t and "You are a helpful" not in t for t in texts)
    assert any("You are a helpful assistant." in t for t in texts)  # compact: default system
    assert any("A red cube, left." in t for t in texts)  # a seat's own earlier notes


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_builtin_renderer_equals_the_checkpoint_template(model_cfg, add_generation_prompt):
    tok = load_tokenizer(model_cfg)
    for messages in GAME_PROMPTS:
        builtin = render_chat_text(messages, add_generation_prompt)
        templated = render_chat_text(messages, add_generation_prompt, tok)
        assert templated == builtin
        ids = tok.hf.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=add_generation_prompt
        )
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert list(ids) == tok.encode(builtin)


def test_token_ids_and_pixels_equal_transformers(model_cfg):
    """Placeholders included: transformers' Qwen2.5-VL image processor gives the patch grid,
    and its processor's rule (each <|image_pad|> of the templated text becomes
    grid_t * grid_h * grid_w / merge_size**2 of them) gives the ids; `render_chat` must
    produce both. (Qwen2_5_VLProcessor itself cannot be built here: its video processor
    needs torchvision, which the CPU stack lacks.)"""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    tok = load_tokenizer(model_cfg)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, merge_size=2
    )
    rng = np.random.default_rng(0)
    for i, messages in enumerate(GAME_PROMPTS[::3]):
        hw = [(168, 224), (100, 61), (300, 300)][i % 3]
        image = Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
        ours = render_chat(messages, tok, image, model_cfg)
        processed = image_processor(images=[image], return_tensors="pt")
        grid = processed["image_grid_thw"][0]
        text = tok.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        text = text.replace(IMAGE_PAD, IMAGE_PAD * (int(grid.prod()) // 4))
        assert ours.input_ids.tolist() == tok.hf(text, add_special_tokens=False)["input_ids"]
        assert int((ours.input_ids == tok.image_pad_id).sum()) == int(grid.prod()) // 4 > 1
        assert ours.image_grid_thw.tolist() == grid.tolist()
        torch.testing.assert_close(ours.pixel_values, processed["pixel_values"], rtol=0, atol=1e-5)


def test_a_template_without_the_image_is_rejected(qwen_dir, tmp_path):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(qwen_dir, local_files_only=True)
    hf.chat_template = "{% for m in messages %}{{ m['role'] }}{% endfor %}"
    hf.save_pretrained(tmp_path)
    cfg = ModelConfig(size="7b", tokenizer_path=str(tmp_path))
    with pytest.raises(ValueError, match="does not render the image"):
        render_chat_text(GAME_PROMPTS[0], True, load_tokenizer(cfg))
    assert IMAGE_PAD in render_chat_text(GAME_PROMPTS[0])
