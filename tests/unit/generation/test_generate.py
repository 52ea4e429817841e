"""KV-cached generation on the tiny Qwen2.5-VL policy against full-forward recomputation.

Max |differences| are printed (`pytest -s`); fp32 on CPU they are ~5e-7.
"""

import pytest
import torch

from vzero_nemo.generation import SamplingParams, generate, sequence_logprobs
from vzero_nemo.generation.kv_cache import CachedCoreAttention
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.logprobs import token_logprobs

pytestmark = pytest.mark.unit

TOL = 1e-5


def _gen(policy, prompts, params, seed=0, padding_side="left"):
    model, tokenizer, model_cfg = policy
    batch = collate_prompts(prompts, tokenizer, model_cfg, padding_side=padding_side)
    return generate(model, batch, params, torch.Generator().manual_seed(seed))


def _full_forward_logits(policy, prompt, response):
    """Uncached: one training forward over prompt + response -> logits [T, V]."""
    model, tokenizer, model_cfg = policy
    full = collate_prompts([prompt.extend(response)], tokenizer, model_cfg)
    model.eval()
    with torch.no_grad():
        logits = model(
            full.input_ids,
            full.position_ids,
            full.causal_mask(),
            pixel_values=full.pixel_values,
            image_grid_thw=full.image_grid_thw,
        )
    return logits[0].float()


def test_cached_greedy_equals_uncached_recomputation(policy, prompts):
    out = _gen(policy, prompts, SamplingParams(temperature=0, max_new_tokens=6))
    max_diff = 0.0
    for prompt, tokens, logps in zip(prompts, out.token_ids, out.logprobs):
        response: list[int] = []
        for step in range(6):
            logits_TV = _full_forward_logits(policy, prompt, response)
            next_token = int(logits_TV[-1].argmax())
            assert tokens[step] == next_token, (step, tokens, response)
            logp = torch.log_softmax(logits_TV[-1].double(), -1)[next_token].item()
            max_diff = max(max_diff, abs(logp - logps[step]))
            response.append(next_token)
    print(f"cached vs uncached greedy: max |logp diff| = {max_diff:.2e}")
    assert max_diff < TOL


def _response_mask(batch, prompt_lengths, response_lengths):
    """True on response tokens of a right-padded batch."""
    mask = torch.zeros_like(batch.attention_mask)
    for row, (n_prompt, n_response) in enumerate(zip(prompt_lengths, response_lengths)):
        mask[row, n_prompt : n_prompt + n_response] = True
    return mask


def test_sampled_logprobs_equal_training_forward(policy, prompts):
    model, tokenizer, model_cfg = policy
    params = SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=8)
    out = _gen(policy, prompts, params, seed=3)
    full = collate_prompts(
        [p.extend(t) for p, t in zip(prompts, out.token_ids)],
        tokenizer,
        model_cfg,
        padding_side="right",
    )
    mask = _response_mask(full, [len(p) for p in prompts], [len(t) for t in out.token_ids])
    logp_BT = sequence_logprobs(model, full, mask, micro_batch_size=3)
    model.eval()
    with torch.no_grad():
        logits = model(
            full.input_ids,
            full.position_ids,
            full.causal_mask(),
            pixel_values=full.pixel_values,
            image_grid_thw=full.image_grid_thw,
        )
    direct_BT = token_logprobs(logits[:, :-1], full.input_ids[:, 1:])
    diff_schedule = diff_direct = 0.0
    for row, logps in enumerate(out.logprobs):
        sampled = torch.tensor(logps, dtype=torch.float32)
        diff_schedule = max(diff_schedule, (logp_BT[row][mask[row]] - sampled).abs().max().item())
        direct = direct_BT[row][mask[row, 1:]]
        diff_direct = max(diff_direct, (direct - sampled).abs().max().item())
    print(
        f"sampling log-probs vs sequence_logprobs: {diff_schedule:.2e}, vs forward {diff_direct:.2e}"
    )
    assert diff_schedule < TOL and diff_direct < TOL
    assert (logp_BT[~mask] == 0).all()
    # Untempered: they are log-probs of the temperature-1 model, not of the sampling law.
    assert all(lp <= 0 for row in out.logprobs for lp in row)


def test_stop_tokens_end_rows_and_leave_others_unchanged(policy, prompts):
    free = _gen(policy, prompts, SamplingParams(temperature=0, max_new_tokens=8))
    stop = free.token_ids[0][2]
    stopped = _gen(
        policy, prompts, SamplingParams(temperature=0, max_new_tokens=8, stop_token_ids=(stop,))
    )
    assert stopped.finished[0] and stopped.token_ids[0][-1] == stop
    assert not all(stopped.finished), "pick a stop token that leaves some row running"
    for row, tokens in enumerate(free.token_ids):
        cut = tokens.index(stop) + 1 if stop in tokens else len(tokens)
        assert stopped.token_ids[row] == tokens[:cut], row
        assert stopped.finished[row] == (stop in tokens)
        diff = max(abs(a - b) for a, b in zip(stopped.logprobs[row], free.logprobs[row][:cut]))
        assert diff < TOL
    assert stopped.num_tokens < free.num_tokens


def test_top_p_samples_stay_in_the_nucleus(policy, prompts):
    top_p = 0.6
    out = _gen(
        policy, prompts, SamplingParams(temperature=1.0, top_p=top_p, max_new_tokens=5), seed=11
    )
    for prompt, tokens in zip(prompts, out.token_ids):
        logits_TV = _full_forward_logits(policy, prompt, tokens)
        probs_KV = torch.softmax(logits_TV[len(prompt) - 1 : -1].double(), -1)
        for step, token in enumerate(tokens):
            more_likely_mass = probs_KV[step][probs_KV[step] > probs_KV[step, token]].sum()
            assert more_likely_mass < top_p, (step, float(more_likely_mass))
    greedy = _gen(policy, prompts, SamplingParams(temperature=0, max_new_tokens=5))
    tiny_p = _gen(policy, prompts, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=5))
    assert tiny_p.token_ids == greedy.token_ids


def test_seeded_generation_is_reproducible(policy, prompts):
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    first, again = _gen(policy, prompts, params, seed=5), _gen(policy, prompts, params, seed=5)
    other = _gen(policy, prompts, params, seed=6)
    assert first.token_ids == again.token_ids and first.logprobs == again.logprobs
    assert first.token_ids != other.token_ids


def test_mixed_lengths_match_one_at_a_time(policy, prompts):
    params = SamplingParams(temperature=0, max_new_tokens=6)
    left = _gen(policy, prompts, params, padding_side="left")
    right = _gen(policy, prompts, params, padding_side="right")
    max_diff = 0.0
    for row, prompt in enumerate(prompts):
        alone = _gen(policy, [prompt], params)
        for batched in (left, right):
            assert batched.token_ids[row] == alone.token_ids[0], row
            diffs = [abs(a - b) for a, b in zip(batched.logprobs[row], alone.logprobs[0])]
            max_diff = max(max_diff, *diffs)
    print(f"batched (left/right padding) vs one at a time: max |logp diff| = {max_diff:.2e}")
    assert max_diff < TOL


def test_generation_leaves_the_model_as_it_was(policy, prompts):
    model = policy[0]
    model.train()
    before = [layer.self_attention.core_attention for layer in model.language_model.decoder.layers]
    _gen(policy, prompts[:1], SamplingParams(max_new_tokens=2))
    after = [layer.self_attention.core_attention for layer in model.language_model.decoder.layers]
    assert model.training and after == before
    assert not any(isinstance(m, CachedCoreAttention) for m in model.modules())


def test_sequence_logprobs_rejects_bad_masks(policy, prompts):
    model, tokenizer, model_cfg = policy
    batch = collate_prompts(prompts[:2], tokenizer, model_cfg, padding_side="right")
    first_column = torch.zeros_like(batch.attention_mask)
    first_column[:, 0] = True
    with pytest.raises(ValueError, match="first token"):
        sequence_logprobs(model, batch, first_column)
    with pytest.raises(ValueError, match="padding"):
        sequence_logprobs(model, batch, ~batch.attention_mask)
    with pytest.raises(ValueError, match="shape"):
        sequence_logprobs(model, batch, batch.attention_mask[:, 1:])


def test_prefill_computes_repeated_prompts_and_the_common_prefix_once(policy, prompts):
    from vzero_nemo.generation.prefill import plan_prefill

    model, tokenizer, model_cfg = policy
    rows = [prompts[0], prompts[1], prompts[0], prompts[2], prompts[0]]  # votes repeat a prompt
    batch = collate_prompts(rows, tokenizer, model_cfg)
    plan = plan_prefill(batch, image_token_id=tokenizer.image_pad_id)
    assert plan.unique_rows_U.tolist() == [0, 1, 3]
    assert plan.unique_of_row_B.tolist() == [0, 1, 0, 2, 0]
    # Every prompt opens with the same system turn up to <|vision_start|>.
    first_image = int((prompts[0].input_ids == tokenizer.image_pad_id).nonzero()[0])
    assert plan.prefix_len == first_image > 5
    lengths = [len(p) for p in prompts[:3]]
    assert plan.num_tokens == plan.prefix_len + sum(n - plan.prefix_len for n in lengths)
    greedy = SamplingParams(temperature=0, max_new_tokens=5)
    out = generate(model, batch, greedy, torch.Generator())
    for row, prompt in enumerate(rows):
        alone = _gen(policy, [prompt], greedy)
        assert out.token_ids[row] == alone.token_ids[0], row
        assert max(abs(a - b) for a, b in zip(out.logprobs[row], alone.logprobs[0])) < TOL
    sampled = generate(
        model,
        batch,
        SamplingParams(temperature=1.0, max_new_tokens=5),
        torch.Generator().manual_seed(0),
    )
    assert len({tuple(sampled.token_ids[r]) for r in (0, 2, 4)}) > 1  # repeats sample apart


@pytest.mark.parametrize("layout", ["grouped", "interleaved", "uneven"])
def test_rows_sharing_a_prompt_decode_over_one_copy_of_its_keys(policy, prompts, layout):
    """Several rows per prompt (the cache keeps each prompt once): greedy tokens equal each
    prompt generated alone, and the log-probs equal the training forward's. The rows of a
    prompt consecutive and as many per prompt (the votes of a game: the cache's view
    layout), interleaved, or 3 and 5 rows of two prompts (the scattered layout)."""
    model, tokenizer, model_cfg = policy
    a, b = prompts[:2]
    rows = {
        "grouped": [a] * 4 + [b] * 4,
        "interleaved": [a, b] * 4,
        "uneven": [a, b, a, b, b, a, b, b],
    }[layout]
    params = SamplingParams(temperature=0, max_new_tokens=6, stop_token_ids=(7,))
    out = _gen(policy, rows, params)
    for row, prompt in enumerate(rows):
        alone = _gen(policy, [prompt], params)
        assert out.token_ids[row] == alone.token_ids[0]
        diff = max(abs(a - b) for a, b in zip(out.logprobs[row], alone.logprobs[0]))
        assert diff < TOL
    sampled = _gen(policy, rows, SamplingParams(temperature=1.0, max_new_tokens=6), seed=4)
    full = collate_prompts(
        [p.extend(t) for p, t in zip(rows, sampled.token_ids)],
        tokenizer,
        model_cfg,
        padding_side="right",
    )
    mask = _response_mask(full, [len(p) for p in rows], [len(t) for t in sampled.token_ids])
    logp_BT = sequence_logprobs(model, full, mask, micro_batch_size=8)
    got = torch.tensor(sum(sampled.logprobs, []), dtype=torch.float32)
    assert (logp_BT[mask] - got).abs().max().item() < TOL
    assert len({tuple(t) for t in sampled.token_ids}) > 2  # the samples of a prompt differ
