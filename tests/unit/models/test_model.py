"""The tiny policy on CPU: forward/backward, padding invariance, log-probs, KV cache, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import render_chat
from vzero_nemo.models.tokenizer import tiny_tokenizer

pytestmark = pytest.mark.unit

CFG = ModelConfig(size="tiny", min_pixels=48 * 48, max_pixels=48 * 48)


def _prompts(n: int):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        text = f"You are player {i + 1} of 4, civilian." + " Describe one object." * (i % 3)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        out.append(render_chat(messages, tiny_tokenizer(), image, CFG))
    return out


def _logits(model, batch, **kwargs):
    return model(
        batch.input_ids,
        batch.position_ids,
        batch.causal_mask(),
        pixel_values=batch.pixel_values,
        image_grid_thw=batch.image_grid_thw,
        **kwargs,
    )


@pytest.fixture
def model(reseed):
    from vzero_nemo.models.provider import build_policy

    return build_policy(CFG)


def test_parameter_count(model):
    from vzero_nemo.models.sizes import dims_for, num_parameters

    counts = num_parameters(dims_for("tiny"), 2048)
    assert sum(p.numel() for p in model.parameters()) == counts["total"] == 1_728_576
    assert sum(p.numel() for p in model.visual.parameters()) == counts["vision"]


def test_forward_backward_reaches_every_parameter(model):
    batch = collate_prompts(_prompts(4), tiny_tokenizer(), CFG)
    logits = _logits(model, batch)
    assert logits.shape == (4, batch.input_ids.shape[1], 2048)
    assert torch.isfinite(logits).all()
    targets = batch.input_ids.roll(-1, dims=1)
    loss = torch.nn.functional.cross_entropy(
        logits[batch.attention_mask], targets[batch.attention_mask]
    )
    assert abs(loss.item() - np.log(2048)) < 0.5  # random init: near-uniform predictions
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_left_padding_does_not_change_real_logits(model):
    prompts = _prompts(3)
    model.eval()
    with torch.no_grad():
        batch = collate_prompts(prompts, tiny_tokenizer(), CFG)
        batched = _logits(model, batch)
        for row, prompt in enumerate(prompts):
            alone = _logits(model, collate_prompts([prompt], tiny_tokenizer(), CFG))[0]
            diff = (batched[row, -len(prompt) :] - alone).abs().max().item()
            assert diff < 1e-5, (row, diff)


def test_labels_path_equals_token_logprobs(model):
    from vzero_nemo.models.logprobs import token_logprobs

    batch = collate_prompts(_prompts(3), tiny_tokenizer(), CFG)
    targets = batch.input_ids.roll(-1, dims=1)
    with torch.no_grad():
        logits = _logits(model, batch)
        loss = _logits(model, batch, labels=targets)  # megatron's per-token cross entropy
    logp = token_logprobs(logits, targets)
    ref = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    assert loss.shape == targets.shape
    assert (logp + loss).abs().max().item() < 1e-5
    assert (logp - ref).abs().max().item() < 1e-5


def test_loss_mask_limits_the_cross_entropy_to_its_positions(model):
    """With a loss mask the output layer runs only at masked-in positions: the same cross
    entropy there (and the same gradients), exactly 0 elsewhere."""
    batch = collate_prompts(_prompts(3), tiny_tokenizer(), CFG, padding_side="right")
    targets = batch.input_ids.roll(-1, dims=1)
    loss_mask = torch.zeros(targets.shape)
    loss_mask[0, 5:9] = 1.0
    loss_mask[2, 20:] = 1.0
    loss_mask[2] *= batch.attention_mask[2]
    results = []
    for kwargs in ({}, {"loss_mask": loss_mask}):
        model.zero_grad()
        ce = _logits(model, batch, labels=targets, **kwargs)
        (ce * loss_mask).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((ce.detach(), grads))
    (full, full_grads), (masked, masked_grads) = results
    assert masked.shape == full.shape
    assert torch.all(masked[loss_mask == 0] == 0)
    assert (masked - full)[loss_mask > 0].abs().max().item() < 1e-5
    assert len(full_grads) == len(masked_grads)
    for a, b in zip(full_grads, masked_grads):
        assert (a - b).abs().max().item() < 1e-6


def test_kv_cached_decoding_matches_full_forward(model):
    from megatron.core.inference.contexts import StaticInferenceContext

    prompt = _prompts(1)[0]
    response = [5, 6, 7]
    full = collate_prompts([prompt.extend(response)], tiny_tokenizer(), CFG)
    head = collate_prompts([prompt], tiny_tokenizer(), CFG)
    n = len(prompt)
    model.eval()
    with torch.no_grad():
        want = _logits(model, full)[0]
        ctx = StaticInferenceContext(max_batch_size=1, max_sequence_length=64)
        got = [_logits(model, head, inference_context=ctx)[0, -1]]
        ctx.sequence_len_offset += n
        for k, token in enumerate(response[:-1]):
            step = model(
                torch.tensor([[token]]),
                full.position_ids[:, :, : n + k + 1],
                None,
                inference_context=ctx,
            )
            ctx.sequence_len_offset += 1
            got.append(step[0, -1])
    diff = (torch.stack(got) - want[n - 1 : n + 2]).abs().max().item()
    assert diff < 1e-5


def test_sharded_state_dict_covers_every_parameter(model):
    sharded = model.sharded_state_dict()
    names = {n for n, _ in model.named_parameters()}
    assert names <= set(sharded)
    assert sharded["language_model.embedding.word_embeddings.weight"].local_shape == (2048, 128)
    assert any(k.startswith("visual.blocks.1.") for k in sharded)


def test_freeze_vision(megatron_1proc):
    from vzero_nemo.models.provider import build_policy

    frozen = build_policy(ModelConfig(size="tiny", freeze_vision=True))
    assert not any(p.requires_grad for p in frozen.visual.parameters())
    assert all(p.requires_grad for p in frozen.language_model.parameters())


def test_positions_are_required(model):
    batch = collate_prompts(_prompts(1), tiny_tokenizer(), CFG)
    with pytest.raises(ValueError, match=r"\(3, B, T\)"):
        model(batch.input_ids, batch.position_ids[0], batch.causal_mask())


def test_causal_only_attention_accepts_right_padding_only(model):
    prompts = _prompts(3)
    left = collate_prompts(prompts, tiny_tokenizer(), CFG)
    right = collate_prompts(prompts, tiny_tokenizer(), CFG, padding_side="right")
    model.eval()
    with torch.no_grad():
        want = _logits(model, left)
        model.config.attention_mask_is_applied = False  # as with TE's fused attention
        try:
            got = _logits(model, right)
            with pytest.raises(ValueError, match="right-pad"):
                _logits(model, left)
        finally:
            model.config.attention_mask_is_applied = True
    for row, prompt in enumerate(prompts):
        n = len(prompt)
        assert (got[row, :n] - want[row, -n:]).abs().max().item() < 1e-5


def test_length_grouped_micro_batches_give_the_same_loss_and_gradient(model):
    """Pre-training's length groups (each padded to its own width) against one common width:
    the rows map back to their sequences, the groups are narrower, and the summed loss and
    every gradient equal the one-width step's."""
    from vzero_nemo.training.batching import (
        TrainSequence,
        make_length_grouped_micro_batches,
        make_micro_batches,
    )
    from vzero_nemo.training.engine import forward_micro_batch

    prompts = _prompts(6)
    seqs = [
        TrainSequence(p, list(range(10, 12 + 7 * (i % 3))), [0.0] * (2 + 7 * (i % 3)))
        for i, p in enumerate(prompts)
    ]

    def step(batches):
        model.zero_grad()
        total = sum((forward_micro_batch(model, mb) * mb.loss_mask).sum() for mb in batches)
        tokens = sum(int(mb.loss_mask.sum()) for mb in batches)
        (total / tokens).backward()
        return total.item(), [p.grad.clone() for p in model.parameters()]

    one = make_micro_batches(seqs, tiny_tokenizer(), CFG, micro_batch_size=6)
    grouped = make_length_grouped_micro_batches(seqs, tiny_tokenizer(), CFG, 6, groups=2)
    assert sorted(r for mb in grouped for r in mb.rows) == list(range(6))
    for mb in grouped:
        for b, r in enumerate(mb.rows):  # each row holds its own sequence
            n = seqs[r].length
            assert (
                mb.input_ids[b, :n].tolist()
                == seqs[r].prompt.extend(seqs[r].response_ids).input_ids.tolist()
            )
    assert [mb.input_ids.shape[1] for mb in grouped] < [one[0].input_ids.shape[1]] * 2
    (loss_one, grads_one), (loss_grouped, grads_grouped) = step(one), step(grouped)
    assert abs(loss_one - loss_grouped) < 1e-4 * abs(loss_one)
    for a, b in zip(grads_one, grads_grouped, strict=True):
        assert (a - b).abs().max().item() < 1e-6
    with pytest.raises(ValueError, match="groups=0"):
        make_length_grouped_micro_batches(seqs, tiny_tokenizer(), CFG, 6, groups=0)


def test_shared_prompt_micro_batches_give_the_same_logprobs_loss_and_gradient(model):
    """Sequences that share a prompt object (the votes of a game) packed into one row per
    prompt: each response token's log-prob, the summed loss and every gradient equal the
    padded one-row-per-sequence layout's; the packed layout has fewer tokens."""
    from vzero_nemo.training.batching import (
        TrainSequence,
        make_micro_batches,
        make_shared_prompt_micro_batches,
    )
    from vzero_nemo.training.engine import forward_micro_batch

    prompts = _prompts(3)
    # Prompt 0 and 2 have 3 samples each, prompt 1 one; responses of different lengths.
    order = [0, 0, 1, 2, 0, 2, 2]
    seqs = [
        TrainSequence(prompts[p], list(range(10, 13 + 4 * (i % 3))), [-0.5] * (3 + 4 * (i % 3)))
        for i, p in enumerate(order)
    ]
    for i, s in enumerate(seqs):
        s.advantage = 0.25 * (i - 3)

    def loss_and_grads(batches):
        model.zero_grad()
        total = sum(
            (
                forward_micro_batch(model, mb)
                * mb.loss_mask
                * mb.advantages.reshape(len(mb.loss_mask), -1)
            ).sum()
            for mb in batches
        )
        tokens = sum(int(mb.loss_mask.sum()) for mb in batches)
        (total / tokens).backward()
        return total.item(), [p.grad.clone() for p in model.parameters()]

    padded = make_micro_batches(seqs, tiny_tokenizer(), CFG, micro_batch_size=4)
    shared = make_shared_prompt_micro_batches(seqs, tiny_tokenizer(), CFG, micro_batch_size=4)
    assert sorted(r for mb in shared for r in mb.rows) == list(range(len(seqs)))
    tokens = lambda batches: sum(mb.input_ids.numel() for mb in batches)  # noqa: E731
    assert tokens(shared) < tokens(padded)
    assert {mb.input_ids.shape for mb in shared} == {shared[0].input_ids.shape}
    loss_p, grads_p = loss_and_grads(padded)
    loss_s, grads_s = loss_and_grads(shared)
    assert abs(loss_p - loss_s) < 1e-5 * max(1.0, abs(loss_p))
    for a, b in zip(grads_p, grads_s, strict=True):
        assert (a - b).abs().max().item() < 1e-6
    # Per-sequence log-probs: read back in sequence order from each layout.
    model.eval()
    with torch.no_grad():
        want = {}
        for mb in padded:
            ce = forward_micro_batch(model, mb)
            for b, r in enumerate(mb.rows):
                want[r] = ce[b][mb.loss_mask[b] > 0]
        got = {}
        for mb in shared:
            ce = forward_micro_batch(model, mb)
            scored = [ce[b][mb.loss_mask[b] > 0] for b in range(ce.shape[0])]
            flat = torch.cat(scored)
            lengths = [len(seqs[r].response_ids) for r in mb.rows]
            for r, piece in zip(mb.rows, flat.split(lengths), strict=True):
                got[r] = piece
    for r in range(len(seqs)):
        assert got[r].shape == want[r].shape
        assert (got[r] - want[r]).abs().max().item() < 1e-5
