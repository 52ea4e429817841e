"""A tiny Qwen2.5-VL policy (random weights, sharpened output layer) and rendered prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vzero_nemo.config import ModelConfig, ParallelConfig

PROMPT_TEXTS = (
    "You are player 1 of 4, civilian. Describe one object. Use <answer></answer>.",
    "You are player 2 of 4, spy. Your image: 2 objects differ in color and shape. Player 1 "
    "said: small red rubber cube. Describe one object. Use <answer></answer>.",
    "hi",
    "You are the observer, 4 players. Player 1 said: blue sphere. Player 2 said: green "
    "cylinder. Player 3 said: red cube. Player 4 said: large metal sphere. Who is the spy? "
    "Answer 1-4 or N/A. Use <answer></answer>.",
)


@pytest.fixture(scope="module")
def policy():
    """(model, tokenizer, model_cfg) on a 1-process gloo world, torn down after the module.

    The output layer is scaled x20 so next-token distributions are peaked (random init gives
    near-uniform ones), which makes greedy margins and top-p nuclei meaningful."""
    from megatron.core.enums import ModelType

    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.models.tokenizer import load_tokenizer
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    initialize_parallel(ParallelConfig(), seed=1234)
    try:
        model_cfg = ModelConfig(size="tiny")
        tokenizer = load_tokenizer(model_cfg)
        model = build_policy(model_cfg, tokenizer=tokenizer)
        model.model_type = ModelType.encoder_or_decoder  # as the trainer sets it for schedules
        with torch.no_grad():
            model.language_model.output_layer.weight.mul_(20.0)
        yield model, tokenizer, model_cfg
    finally:
        destroy_parallel()


@pytest.fixture(scope="module")
def prompts(policy):
    """Four rendered prompts of different lengths, each with its own random 48x48 image."""
    from vzero_nemo.models.chat import render_chat

    _, tokenizer, model_cfg = policy
    rng = np.random.default_rng(0)
    out = []
    for text in PROMPT_TEXTS:
        image = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        out.append(render_chat(messages, tokenizer, image, model_cfg))
    assert len({len(p) for p in out}) == len(out), "prompt lengths must differ"
    return out
