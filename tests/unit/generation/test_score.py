"""Scoring responses over the KV cache (each distinct prompt once, responses as one block)
equals one training forward per prompt + response row."""

from __future__ import annotations

import pytest
import torch

from vzero_nemo.generation import sequence_logprobs
from vzero_nemo.generation.score import score_responses
from vzero_nemo.models.batch import collate_prompts

pytestmark = pytest.mark.unit

TOL = 1e-5


def _rows(prompts):
    """Eight rows: every prompt twice (the same object, as the votes of a game), responses
    of different lengths (1 to 9 tokens)."""
    rows = [prompts[i % len(prompts)] for i in range(8)]
    responses = [[(7 * i + j) % 1900 + 20 for j in range(1 + i)] for i in range(8)]
    return rows, responses


def _training_forward(policy, rows, responses):
    model, tokenizer, model_cfg = policy
    full = collate_prompts(
        [p.extend(r) for p, r in zip(rows, responses)], tokenizer, model_cfg, padding_side="right"
    )
    mask = torch.zeros_like(full.attention_mask)
    for row, (p, r) in enumerate(zip(rows, responses)):
        mask[row, len(p) : len(p) + len(r)] = True
    logp_BT = sequence_logprobs(model, full, mask, micro_batch_size=4)
    return [logp_BT[row][mask[row]].tolist() for row in range(len(rows))]


@pytest.mark.parametrize("max_batch", [8, 3])
def test_scores_equal_the_training_forward(policy, prompts, max_batch):
    model, tokenizer, model_cfg = policy
    rows, responses = _rows(prompts)
    got = score_responses(model, rows, responses, tokenizer, model_cfg, max_batch=max_batch)
    want = _training_forward(policy, rows, responses)
    assert [len(g) for g in got] == [len(r) for r in responses]
    diff = max(abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w))
    print(f"cached scoring vs training forward (max_batch {max_batch}): {diff:.2e}")
    assert diff < TOL
    assert min(min(g) for g in got) < -1.0  # real log-probs, not zeros


def test_bad_inputs_are_refused(policy, prompts):
    model, tokenizer, model_cfg = policy
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        score_responses(model, prompts[:2], [[5]], tokenizer, model_cfg, max_batch=4)
    with pytest.raises(ValueError, match="empty response"):
        score_responses(model, prompts[:1], [[]], tokenizer, model_cfg, max_batch=4)
