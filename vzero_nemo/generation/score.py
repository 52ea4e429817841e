"""Log-probs of given responses under a model, with each distinct prompt computed once.

    from vzero_nemo.generation.score import score_responses
    logps = score_responses(reference, prompts, responses, tokenizer, cfg.model, max_batch=256)
    logps[i][j] = log p(responses[i][j] | prompts[i], responses[i][:j])

The trainer scores the sampled responses under the frozen reference (the KL term). The
`num_votes` responses of a game share one prompt, so instead of a training forward over
every prompt + response row (each prompt computed `num_votes` times, every row padded to
the longest), this is the generation path (`generate.py`) with given tokens: a packed
prefill of each DISTINCT prompt once (`prefill.py`, each image once), whose last-token
logits score each response's first token, then ONE forward of all response tokens as a
block over the KV cache (`kv_cache.py`), whose cross entropy scores the rest. The
vocabulary softmax runs only at response positions and vocabulary-parallel (no gather), at
any TP / PP: the last stage broadcasts the result.

Equal to `sequence_logprobs` (one training forward per row) to float rounding (KV-cached vs
full forward; below 1e-5 in fp32 on CPU, tests/unit/generation/test_score.py, and at TP=2 and
PP=2, tests/distributed/test_generation_parallel.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.generation.generate import (
    _prefill,
    _StageRunner,
    inference_scope,
    unwrap_model,
)
from vzero_nemo.generation.kv_cache import KVCache
from vzero_nemo.generation.prefill import plan_prefill
from vzero_nemo.models.batch import PromptBatch, collate_prompts
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.models.logprobs import masked_cross_entropy, token_logprobs
from vzero_nemo.models.tokenizer import VLTokenizer
from vzero_nemo.profiling import region


def score_responses(
    model,
    prompts: Sequence[PromptInputs],
    responses: Sequence[Sequence[int]],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    *,
    max_batch: int,
) -> list[list[float]]:
    """Log-prob of every response token given its prompt, in chunks of `max_batch` rows
    (rows sharing a prompt object share its prefill when they fall in one chunk)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch} must be >= 1")
    if any(len(r) == 0 for r in responses):
        raise ValueError("an empty response has nothing to score; drop it first")
    out: list[list[float]] = []
    for start in range(0, len(prompts), max_batch):
        rows = slice(start, start + max_batch)
        batch = collate_prompts(prompts[rows], tokenizer, model_cfg)
        logp_Bk = _score_batch(model, batch, responses[rows], tokenizer.pad_id)
        out += [logp_Bk[i, : len(r)].tolist() for i, r in enumerate(responses[rows])]
    return out


def _score_batch(
    model, batch: PromptBatch, responses: Sequence[Sequence[int]], pad_id: int
) -> torch.Tensor:
    """[B, k] float64 log-probs of the responses (k = longest; 0 past a row's end)."""
    vlm = unwrap_model(model)
    runner = _StageRunner(vlm)
    batch_size, width = batch.input_ids.shape
    k = max(len(r) for r in responses)
    tokens_Bk = torch.full((batch_size, k), pad_id, dtype=torch.long)
    for row, response in enumerate(responses):
        tokens_Bk[row, : len(response)] = torch.as_tensor(response, dtype=torch.long)
    logp_Bk = torch.zeros(batch_size, k, dtype=torch.float64, device=runner.device)
    with region("prefill"):
        plan = plan_prefill(batch, image_token_id=vlm.config.image_token_id)
        cache = KVCache(plan, max_len=width + k, device=runner.device)
        with inference_scope(vlm, cache):
            logits_BV = _prefill(vlm, runner, batch, plan, cache)
            if logits_BV is not None:
                first_B = token_logprobs(logits_BV, tokens_Bk[:, 0].to(logits_BV.device))
                logp_Bk[:, 0] = first_B.double()
    if k > 1:
        with region("block"), inference_scope(vlm, cache):
            logp_Bk[:, 1:] = _block_logprobs(runner, batch, cache, tokens_Bk, responses)
    runner.stage.broadcast_from_last(logp_Bk)
    return logp_Bk.cpu()


def _block_logprobs(runner, batch: PromptBatch, cache: KVCache, tokens_Bk, responses):
    """Response tokens 0..k-2 as one block; log p of tokens 1..k-1 [B, k-1] (last stage;
    zeros elsewhere)."""
    batch_size, k = tokens_Bk.shape
    scored_Bn = torch.zeros(batch_size, k - 1)
    for row, response in enumerate(responses):
        scored_Bn[row, : len(response) - 1] = 1.0
    positions_Bn = batch.next_position[:, None] + torch.arange(k - 1)
    cache.begin_decode(k - 1)
    ce_Bn = runner.forward(
        input_ids=tokens_Bk[:, :-1].to(runner.device),
        decoder_input=None,
        position_ids=positions_Bn[None].expand(3, -1, -1),
        last_index=scored_Bn,
        labels=tokens_Bk[:, 1:],
        output_processor=masked_cross_entropy,
    )
    cache.end_forward()
    if ce_Bn is None:
        return torch.zeros(batch_size, k - 1, dtype=torch.float64, device=runner.device)
    return (-ce_Bn).double() * scored_Bn.to(ce_Bn.device)
