"""Chat rendering: Qwen2.5-VL's chat template, image expansion, input validation."""

from __future__ import annotations

import jinja2
import numpy as np
import pytest
import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.chat import render_chat, render_chat_text
from vzero_nemo.models.tokenizer import tiny_tokenizer

pytestmark = pytest.mark.unit

# Qwen2.5-VL-*-Instruct chat_template.json (image/text parts; add_vision_id off).
QWEN25VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CFG = ModelConfig(size="tiny", min_pixels=48 * 48, max_pixels=48 * 48)
IMAGE = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)


def _user(text: str, image_first: bool = True) -> dict:
    parts = [{"type": "image"}, {"type": "text", "text": text}]
    return {"role": "user", "content": parts if image_first else parts[::-1]}


CONVERSATIONS = [
    [_user("Who is the spy?")],
    [{"role": "system", "content": "Rules."}, _user("Describe one object.", image_first=False)],
    [
        {"role": "system", "content": "Rules."},
        _user("Round 1."),
        {"role": "assistant", "content": "<answer>red cube</answer>"},
        {"role": "user", "content": "Round 2."},
    ],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_text_equals_qwen_chat_template(messages, add_generation_prompt):
    want = jinja2.Template(QWEN25VL_TEMPLATE).render(
        messages=messages, add_generation_prompt=add_generation_prompt
    )
    assert render_chat_text(messages, add_generation_prompt) == want


def test_token_layout_with_expanded_image():
    tok = tiny_tokenizer()
    prompt = render_chat([_user("Who is the spy?")], tok, IMAGE, CFG)
    ids = prompt.input_ids.tolist()
    # 48x48 px -> 6x6 patches of 8 px -> 3x3 = 9 merged image tokens.
    assert prompt.image_grid_thw.tolist() == [1, 6, 6]
    assert prompt.pixel_values.shape == (36, 384)
    start = ids.index(tok.vision_start_id)
    assert ids[start + 1 : start + 10] == [tok.image_pad_id] * 9
    assert ids[start + 10] == tok.vision_end_id
    assert ids.count(tok.image_pad_id) == 9
    want = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|>" + "<|image_pad|>" * 9 + "<|vision_end|>Who is the spy?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tok.decode(ids) == want
    assert ids[:2] == [tok.im_start_id, tok.encode("system")[0]]
    assert ids[-3:] == [tok.im_start_id, *tok.encode("assistant\n")]


def test_extend_appends_response_tokens():
    tok = tiny_tokenizer()
    prompt = render_chat([_user("Hi")], tok, IMAGE, CFG)
    full = prompt.extend([5, 6, tok.im_end_id])
    assert len(full) == len(prompt) + 3
    assert full.input_ids[-3:].tolist() == [5, 6, tok.im_end_id]
    assert full.pixel_values is prompt.pixel_values
    assert torch.equal(full.input_ids[: len(prompt)], prompt.input_ids)


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "empty"),
        ([{"role": "user", "content": "no image"}], "0 image entries"),
        ([_user("a"), _user("b")], "2 image entries"),
        ([{"role": "tool", "content": "x"}], "role 'tool'"),
        ([{"role": "user", "content": [{"type": "video"}]}], "parts are"),
        ([{"role": "user", "content": 3}], "must be a str"),
        ([_user("<|image_pad|>")], "must not contain"),
    ],
)
def test_bad_messages(messages, match):
    with pytest.raises(ValueError, match=match):
        render_chat(messages, tiny_tokenizer(), IMAGE, CFG)
