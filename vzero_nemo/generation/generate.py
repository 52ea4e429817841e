"""Batched, KV-cached sampling from a Megatron-Bridge Qwen2.5-VL model at any TP / PP.

One call serves every seat of every game of a turn: a `PromptBatch` (from
`vzero_nemo.models.batch.collate_prompts`) of padded prompts with different lengths and
images. The prefill runs the vision tower and the embedding merge once, then one
language-model forward (megatron-core `GPTModel`) over the prompt tokens packed into one
sequence: no padding, each distinct prompt once, the prompts' common prefix (the system turn)
once (`prefill.py`). Each further token is one forward over the new tokens only, attending
to a static KV cache (`kv_cache.py`).

    from vzero_nemo.generation import SamplingParams, generate
    from vzero_nemo.models.batch import collate_prompts
    batch = collate_prompts(prompts, tokenizer, cfg.model)          # one row per seat
    out = generate(model, batch, SamplingParams(temperature=0.8, max_new_tokens=64,
                   stop_token_ids=tokenizer.stop_ids), torch.Generator().manual_seed(seed))
    out.token_ids[i], out.logprobs[i], out.finished[i]

Returned log-probs are those of the UNTEMPERED model (log-softmax of the raw logits) at the
sampled tokens, whatever the sampling temperature / top-p: GRPO's importance ratio needs the
old policy's log-probs to equal the training forward's log-probs of the same tokens, and the
training forward has no temperature. They come from the full-vocabulary logits the last stage
gathers to sample anyway (one log-softmax, no further collectives).

Positions: the batch's M-RoPE positions for the prompt (as the training forward gets them);
generated token k of row i gets `batch.next_position[i] + k` on all three M-RoPE axes
(max prompt position + 1 + k: Qwen2.5-VL's rope deltas).

Parallelism: pipeline stages exchange hidden states with send/recv; the last stage gathers
the vocabulary shards of the next-token logits to sample (the only gather), and broadcasts
token ids and log-probs to the other stages. Every rank draws the same uniforms from
`generator`, so generator states stay identical across the model-parallel group.

Finished rows (a stop token was sampled) leave the batch and the KV cache at the next step,
so the rest decodes at the size of the unfinished batch. When rows repeat prompts (on
average at least twice, as the observer's `num_votes` samples do), the cache keeps each
distinct prompt's keys and values once and every decode step reads them once for all its
rows (`KVCache(share_prompts=True)`).

GPU: the same path runs there (not tested here: no GPU); `scaled_dot_product_attention`
dispatches to fused CUDA kernels. megatron-core 0.19.2's dynamic inference engine is not
used: its context derives 1-D positions itself (no M-RoPE) and needs flash-attn. Sequence
parallelism must be off in the generating model (`kv_cache._check_supported` raises): a
one-token decode step cannot be split along the sequence over TP ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from vzero_nemo.generation.decode_step import LeanDecoder, lean_decode_unsupported
from vzero_nemo.generation.kv_cache import KVCache, attach_kv_cache
from vzero_nemo.generation.pipeline import PipelineStage, gather_vocab_shards
from vzero_nemo.generation.prefill import PrefillPlan, plan_prefill, unique_images
from vzero_nemo.generation.sampling import SamplingParams, draw_uniforms, sample_tokens
from vzero_nemo.models.batch import PromptBatch
from vzero_nemo.profiling import region


@dataclass(kw_only=True, slots=True)
class GenerationOutput:
    token_ids: list[list[int]]
    """Generated ids per row, the stop token included when one was sampled."""
    logprobs: list[list[float]]
    """Untempered model log-prob of each generated id (same lengths as `token_ids`)."""
    finished: list[bool]
    """True if the row ended with a stop token, False if it hit `max_new_tokens`."""

    @property
    def num_tokens(self) -> int:
        return sum(len(ids) for ids in self.token_ids)


def unwrap_model(model):
    """The Qwen25VLModel inside DDP / Float16Module wrappers (a one-chunk list is accepted)."""
    if isinstance(model, list | tuple):
        if len(model) != 1:
            raise ValueError(
                f"generation takes one model chunk, got {len(model)} (virtual pipeline "
                "parallelism is not supported for generation)"
            )
        model = model[0]
    while hasattr(model, "module"):
        model = model.module
    if not hasattr(model, "language_model"):
        raise ValueError(f"{type(model).__name__} is not a Qwen2.5-VL model (no language_model)")
    return model


@contextlib.contextmanager
def inference_scope(vlm, cache: KVCache) -> Iterator[None]:
    """Eval mode, no autograd and the KV cache attached; the training mode comes back after."""
    was_training = vlm.training
    vlm.eval()
    try:
        with torch.no_grad(), attach_kv_cache(vlm.language_model, cache):
            yield
    finally:
        vlm.train(was_training)


def _last_token_logits(*, hidden_states, output_layer, output_weight, scale_logits, context, **_):
    """`GPTModel.forward` output processor: logits of each row's last token only, [B, V/tp].

    Prefill: hidden_states is the packed prompt [N, 1, H] and `context` the index of each
    row's last token in it. Decode: hidden_states is [1, B, H] and `context` None."""
    if context is None:
        last_1BH = hidden_states
    else:
        last_1BH = hidden_states[context.to(hidden_states.device), 0].unsqueeze(0)
    logits_1BV, _ = output_layer(last_1BH, weight=output_weight, runtime_gather_output=False)
    return scale_logits(logits_1BV)[0]


class _StageRunner:
    """One language-model forward on this pipeline stage; returns logits on the last stage."""

    def __init__(self, vlm, lean_decode: bool = True) -> None:
        self.lm = vlm.language_model
        self.stage = PipelineStage(self.lm.pg_collection.pp)
        self.tp_group = self.lm.pg_collection.tp
        first_param = next(self.lm.parameters())
        self.device, self.dtype = first_param.device, first_param.dtype
        use_lean = lean_decode and lean_decode_unsupported(self.lm) is None
        self.lean = LeanDecoder(self.lm) if use_lean else None

    def decode(self, *, input_ids, position_ids) -> torch.Tensor | None:
        """One new token per row: [B, 1] ids and [3, B, 1] positions -> last-token logits
        [B, V/tp] on the last stage (None elsewhere). `LeanDecoder` when it supports the model
        (the same arithmetic without the layer orchestration), else the megatron-core forward."""
        if self.lean is None:
            return self.forward(input_ids=input_ids, decoder_input=None, position_ids=position_ids)
        hidden = None
        if not self.stage.is_first:
            shape = (1, position_ids.shape[1], self.lm.config.hidden_size)
            hidden = self.stage.recv_forward(shape, self.dtype, self.device)
            input_ids = None
        out = self.lean(input_ids, hidden, position_ids.to(self.device))
        if not self.stage.is_last:
            self.stage.send_forward(out)
            return None
        lm = self.lm
        weight = (
            lm.shared_embedding_or_output_weight()
            if lm.share_embeddings_and_output_weights
            else None
        )
        return _last_token_logits(
            hidden_states=out,
            output_layer=lm.output_layer,
            output_weight=weight,
            scale_logits=lm._scale_logits,
            context=None,
        ).float()

    def forward(
        self,
        *,
        input_ids,
        decoder_input,
        position_ids,
        last_index=None,
        labels=None,
        output_processor=_last_token_logits,
    ) -> torch.Tensor | None:
        """`output_processor` turns the last stage's hidden states into the result (default:
        last-token logits, `last_index` its context; else `labels` are passed along and the
        processor gets `last_index` as its context)."""
        batch, num_new = position_ids.shape[1], position_ids.shape[2]
        if not self.stage.is_first:
            hidden = (num_new, batch, self.lm.config.hidden_size)
            self.lm.set_input_tensor(self.stage.recv_forward(hidden, self.dtype, self.device))
            input_ids = decoder_input = None
        out = self.lm(
            input_ids=input_ids,
            position_ids=position_ids.to(self.device),
            attention_mask=None,
            decoder_input=decoder_input,
            labels=None if labels is None else labels.to(self.device),
            output_processor=output_processor,
            output_processor_context=last_index,
        )
        if not self.stage.is_last:
            self.stage.send_forward(out)
            return None
        return out.float()


def generate(
    model,
    batch: PromptBatch,
    params: SamplingParams,
    generator: torch.Generator,
    *,
    lean_decode: bool = True,
) -> GenerationOutput:
    """Sample continuations of every prompt of `batch` (see the module docstring).

    `lean_decode=False` runs every decode step through the megatron-core forward instead of
    `decode_step.LeanDecoder` (bit-identical results; for tests and comparisons).

    `batch` comes from `vzero_nemo.models.batch.collate_prompts` (left or right padding).
    `generator` is a CPU `torch.Generator`, seeded identically on every rank of the
    model-parallel group; the same generator state, batch and weights give the same tokens.
    """
    vlm = unwrap_model(model)
    runner = _StageRunner(vlm, lean_decode=lean_decode)
    batch_size, width = batch.input_ids.shape
    with region("prefill"):
        plan = plan_prefill(batch, image_token_id=vlm.config.image_token_id)
        # Rows repeating a prompt (the votes of a game) share its keys in the cache.
        share = plan.num_unique * 2 <= batch_size
        max_len = width + params.max_new_tokens - 1
        cache = KVCache(plan, max_len=max_len, device=runner.device, share_prompts=share)
        with inference_scope(vlm, cache):
            logits_RV = _prefill(vlm, runner, batch, plan, cache)
    stop_ids = torch.tensor(params.stop_token_ids, dtype=torch.long)
    token_ids: list[list[int]] = [[] for _ in range(batch_size)]
    logprobs: list[list[float]] = [[] for _ in range(batch_size)]
    finished = [False] * batch_size
    active_R = torch.arange(batch_size)
    with region("decode"), inference_scope(vlm, cache):
        for step in range(params.max_new_tokens):
            uniform_B = draw_uniforms(batch_size, generator) if params.temperature > 0 else None
            tokens_R, logp_R = _next_tokens(runner, logits_RV, params, uniform_B, active_R)
            for row, token, logp in zip(active_R.tolist(), tokens_R.tolist(), logp_R.tolist()):
                token_ids[row].append(token)
                logprobs[row].append(logp)
            stopped_R = torch.isin(tokens_R, stop_ids)
            for row in active_R[stopped_R].tolist():
                finished[row] = True
            if step + 1 == params.max_new_tokens or bool(stopped_R.all()):
                break
            if bool(stopped_R.any()):
                keep_R = (~stopped_R).nonzero().squeeze(-1)
                active_R, tokens_R = active_R[keep_R], tokens_R[keep_R]
                cache.keep_rows(keep_R)
            cache.begin_decode()
            positions_3R1 = (batch.next_position[active_R] + step).view(1, -1, 1).expand(3, -1, 1)
            logits_RV = runner.decode(
                input_ids=tokens_R[:, None].to(runner.device), position_ids=positions_3R1
            )
            cache.end_forward()
    return GenerationOutput(token_ids=token_ids, logprobs=logprobs, finished=finished)


def _prefill(
    vlm, runner: _StageRunner, batch: PromptBatch, plan: PrefillPlan, cache: KVCache
) -> torch.Tensor | None:
    """Fill `cache` with the prompts; next-token logits of every batch row [B, V/tp] on the
    last stage (None elsewhere)."""
    source_rows_N = plan.unique_rows_U[plan.source_unique_N]
    packed_positions_31N = batch.position_ids[:, source_rows_N, plan.source_columns_N][:, None]
    packed_N1H = _packed_prompt(vlm, batch, plan, runner.device) if runner.stage.is_first else None
    cache.begin_prefill()
    logits_UV = runner.forward(
        input_ids=None,
        decoder_input=packed_N1H,
        position_ids=packed_positions_31N,
        last_index=plan.last_index_U,
    )
    cache.end_forward()
    if logits_UV is None:
        return None
    return logits_UV[plan.unique_of_row_B.to(logits_UV.device)]


def _packed_prompt(vlm, batch: PromptBatch, plan: PrefillPlan, device) -> torch.Tensor:
    """Decoder input of the prefill: the plan's packed prompt tokens [N, 1, H] (first stage)."""
    rows_U = plan.unique_rows_U
    pixel_values, image_grid_thw, image_of_row_U = unique_images(batch, rows_U)
    embeds_SUH = vlm.embed(
        batch.input_ids[rows_U].to(device),
        pixel_values.to(device),
        image_grid_thw.to(device),
        image_of_row_U,
    )
    return embeds_SUH[plan.source_columns_N.to(device), plan.source_unique_N.to(device)][:, None]


def _next_tokens(
    runner: _StageRunner,
    logits_RV: torch.Tensor | None,
    params: SamplingParams,
    uniform_B: torch.Tensor | None,
    active_R: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample on the last stage; every stage gets (token ids [R] long, log-probs [R] float64)."""
    packed_R2 = torch.empty(active_R.numel(), 2, dtype=torch.float64, device=runner.device)
    if runner.stage.is_last:
        full_RV = gather_vocab_shards(logits_RV, runner.tp_group)
        uniform_R = uniform_B[active_R] if uniform_B is not None else None
        tokens_R = sample_tokens(full_RV, params, uniform_R)
        packed_R2[:, 0] = tokens_R.double()
        # From the gathered logits sampling needs anyway: no vocabulary-parallel collectives.
        logp_RV = torch.log_softmax(full_RV.float(), dim=-1)
        packed_R2[:, 1] = logp_RV.gather(-1, tokens_R[:, None].to(logp_RV.device))[:, 0].double()
    runner.stage.broadcast_from_last(packed_R2)
    packed_R2 = packed_R2.cpu()
    return packed_R2[:, 0].long(), packed_R2[:, 1]
