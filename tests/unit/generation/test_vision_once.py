"""Each distinct image is encoded once per forward, with the same result as one image per row.

Six prompts show three images (two rows each, different texts, as the seats of a game that
see the same image). "shared": the prompts hold one `ImagePatches` per image, so a batch
stores each image once and the vision tower encodes it once. "copies": every prompt holds
its own copy of the same pixels, so every row is encoded (the behaviour before). Logits,
sampled tokens and log-probs must agree to float rounding; the vision tower must see half
the patches. (TP=2: tests/distributed/test_generation_parallel.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vzero_nemo.generation import SamplingParams, generate, sequence_logprobs
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import ImagePatches, image_patches, render_chat
from vzero_nemo.training.batching import TrainSequence, make_micro_batches

pytestmark = pytest.mark.unit

TOL = 1e-6
TEXTS = ("You are player 1 of 4, civilian.", "Player 1 said: red cube. Who is the spy?")


@pytest.fixture(scope="module")
def shared_and_copies(policy):
    _, tokenizer, model_cfg = policy
    rng = np.random.default_rng(3)
    shared, copies = [], []
    for _ in range(3):
        patches = image_patches(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), model_cfg)
        for text in TEXTS:
            messages = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
            ]
            shared.append(render_chat(messages, tokenizer, patches, model_cfg))
            copy = ImagePatches(patches.pixel_values.clone(), patches.image_grid_thw.clone())
            copies.append(render_chat(messages, tokenizer, copy, model_cfg))
    return shared, copies


def _patches_seen(model):
    """Rows of pixel_values passed to the vision tower, appended per call."""
    seen: list[int] = []
    handle = model.visual.register_forward_pre_hook(
        lambda _mod, args, kwargs: seen.append(int(kwargs.get("hidden_states", args[0]).shape[0])),
        with_kwargs=True,
    )
    return seen, handle


def test_batch_stores_each_image_once(policy, shared_and_copies):
    _, tokenizer, model_cfg = policy
    shared, copies = shared_and_copies
    batch = collate_prompts(shared, tokenizer, model_cfg)
    assert batch.image_of_row.tolist() == [0, 0, 1, 1, 2, 2]
    assert batch.image_grid_thw.shape == (3, 3)
    assert batch.pixel_values.shape[0] == 3 * 36
    every_row = collate_prompts(copies, tokenizer, model_cfg)
    assert every_row.image_of_row.tolist() == list(range(6))
    assert torch.equal(batch.row_pixel_values(), every_row.pixel_values)
    assert torch.equal(batch.row_grid_thw, every_row.image_grid_thw)
    assert torch.equal(batch.position_ids, every_row.position_ids)
    part = batch.rows(3, 6)  # a micro-batch keeps only the images its rows show
    assert part.image_of_row.tolist() == [0, 1, 1]
    assert torch.equal(part.pixel_values, batch.pixel_values[36:])


def test_logits_equal_one_image_per_row(policy, shared_and_copies):
    model, tokenizer, model_cfg = policy
    logits = {}
    seen, handle = _patches_seen(model)
    try:
        for name, prompts in zip(("shared", "copies"), shared_and_copies):
            batch = collate_prompts(prompts, tokenizer, model_cfg, padding_side="right")
            with torch.no_grad():
                logits[name] = model(
                    batch.input_ids,
                    batch.position_ids,
                    batch.causal_mask(),
                    **batch.vision_inputs(),
                )
    finally:
        handle.remove()
    diff = (logits["shared"] - logits["copies"]).abs().max().item()
    print(f"vision once vs per row: max |logit diff| = {diff:.2e}; patches encoded {seen}")
    assert seen == [3 * 36, 6 * 36]
    assert diff <= TOL


def test_generation_and_logprobs_equal_one_image_per_row(policy, shared_and_copies):
    model, tokenizer, model_cfg = policy
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    out, logp = {}, {}
    seen, handle = _patches_seen(model)
    try:
        for name, prompts in zip(("shared", "copies"), shared_and_copies):
            batch = collate_prompts(prompts, tokenizer, model_cfg)
            out[name] = generate(model, batch, params, torch.Generator().manual_seed(5))
            full = collate_prompts(
                [p.extend(t) for p, t in zip(prompts, out[name].token_ids)],
                tokenizer,
                model_cfg,
                padding_side="right",
            )
            mask = torch.zeros_like(full.attention_mask)
            for row, (p, t) in enumerate(zip(prompts, out[name].token_ids)):
                mask[row, len(p) : len(p) + len(t)] = True
            logp[name] = sequence_logprobs(model, full, mask, micro_batch_size=4)
    finally:
        handle.remove()
    assert out["shared"].token_ids == out["copies"].token_ids
    sampled = max(
        abs(a - b)
        for ra, rb in zip(out["shared"].logprobs, out["copies"].logprobs)
        for a, b in zip(ra, rb)
    )
    scored = (logp["shared"] - logp["copies"]).abs().max().item()
    print(f"sampling logp diff {sampled:.2e}, scoring logp diff {scored:.2e}, patches {seen}")
    assert sampled <= TOL and scored <= TOL
    # Prefill: 3 images vs 6; scoring in micro-batches of 4 rows (rows 0-3, then 2-5):
    # 2 + 2 images vs 4 + 4.
    assert seen == [3 * 36, 2 * 36, 2 * 36, 6 * 36, 4 * 36, 4 * 36]


def test_training_micro_batches_share_images(policy, shared_and_copies):
    _, tokenizer, model_cfg = policy
    shared, _ = shared_and_copies
    seqs = [TrainSequence(p, [5, 6], [-1.0, -1.0]) for p in shared[:5]]
    batches = make_micro_batches(seqs, tokenizer, model_cfg, micro_batch_size=4)
    # Rows 0-2 (images 0, 0, 1), then rows 3-4 (images 1, 2) + a filler row repeating row 3.
    assert [mb.image_of_row.tolist() for mb in batches] == [[0, 0, 1], [0, 1, 0]]
    assert [mb.image_grid_thw.shape[0] for mb in batches] == [2, 2]  # filler rows add none
