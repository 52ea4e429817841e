"""The tiny tokenizer: reproducible from its script, Qwen2.5-VL special-token layout."""

from __future__ import annotations

import pytest

from vzero_nemo.config import ModelConfig
from vzero_nemo.models import tokenizer as tk

pytestmark = pytest.mark.unit


def test_shipped_tokenizer_is_rebuilt_bit_exactly():
    assert tk.TINY_TOKENIZER_FILE.read_text(encoding="utf-8") == tk.tiny_tokenizer_json()


def test_special_token_layout_matches_qwen_order():
    tok = tk.tiny_tokenizer()
    assert len(tok) == tk.TINY_VOCAB_SIZE == 2048
    base = 2048 - len(tk.SPECIAL_TOKENS) - len(tk.TAG_TOKENS)
    # Specials follow the BPE vocabulary in Qwen's order, then the 4 tag tokens.
    assert [tok.hf.convert_tokens_to_ids(t) for t in tk.SPECIAL_TOKENS] == list(
        range(base, base + 8)
    )
    assert [tok.hf.convert_tokens_to_ids(t) for t in tk.TAG_TOKENS] == [2044, 2045, 2046, 2047]
    ids = tok.special_ids
    assert (ids.pad, ids.im_start, ids.im_end, ids.image_pad) == (2036, 2037, 2038, 2042)
    assert tok.stop_ids == (2038, 2036)


@pytest.mark.parametrize(
    "text",
    [
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Who is the spy?<|im_end|>\n",
        "<think>The large purple metal cylinder is left.</think><answer>purple cube</answer>",
        "Player 3 said: 42% of the bar chart, N/A. Zebra quantum Übermensch 日本 \\boxed{2}",
    ],
)
def test_round_trip(text):
    tok = tk.tiny_tokenizer()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < len(tok) for i in ids)


def test_specials_and_tags_are_single_tokens():
    tok = tk.tiny_tokenizer()
    for token in tk.SPECIAL_TOKENS + tk.TAG_TOKENS:
        assert tok.encode(token) == [tok.hf.convert_tokens_to_ids(token)]
    # Tags survive decoding without special tokens; chat specials do not.
    ids = tok.encode("<|im_start|><answer>red</answer><|im_end|>")
    assert tok.decode(ids, skip_special_tokens=True) == "<answer>red</answer>"


def test_game_vocabulary_is_compact():
    tok = tk.tiny_tokenizer()
    # Every CLEVR attribute word is one token after a space (the BPE learned them).
    for word in ("cube", "sphere", "cylinder", "rubber", "metal", "purple", "cyan", "civilian"):
        assert len(tok.encode(" " + word)) == 1, word
    # One token per word and punctuation mark.
    assert len(tok.encode("You are player 3 of 4, civilian. Describe one object.")) == 13


def test_real_size_needs_a_local_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="model.hf_path"):
        tk.load_tokenizer(ModelConfig(size="7b"))
    with pytest.raises(ValueError, match="does not exist"):
        tk.load_tokenizer(ModelConfig(size="7b", hf_path=str(tmp_path / "missing")))


def test_published_ids_for_real_sizes_and_mismatch_error():
    assert tk.special_token_ids(ModelConfig(size="72b")) == tk.QWEN25VL_SPECIAL_IDS
    with pytest.raises(ValueError, match="published"):
        tk.special_token_ids(ModelConfig(size="7b"), tokenizer=tk.tiny_tokenizer())
