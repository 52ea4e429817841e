"""Log-probs of given sequences (prompt + response) under a policy or the frozen reference.

    from vzero_nemo.generation.logprobs import sequence_logprobs
    full = collate_prompts([p.extend(ids) for p, ids in zip(prompts, out.token_ids)], tok, cfg.model)
    logp_BT = sequence_logprobs(reference_model, full, response_mask_BT, micro_batch_size=8)

Column t of the result is log p(token t | tokens < t) where `response_mask_BT[:, t]` is True
and 0 elsewhere (column 0 has no prediction and must be False). The forward is the training
forward (`model(input_ids, position_ids, causal_mask, pixel_values, image_grid_thw)`), run
through megatron-core's forward-only pipeline schedule, so it works at any TP / PP; the
log-softmax is vocabulary-parallel (`vzero_nemo.models.logprobs.token_logprobs`, no gather
of the full-vocabulary logits). Every rank of the model-parallel group returns the same
tensor (the last pipeline stage broadcasts it).

Log-probs returned by `generate` for its own samples equal these to float rounding
(KV-cached prefill/decode vs one full forward: ~5e-7 in fp32 on CPU), so the trainer can use
them as the old policy's log-probs and needs this function for the reference model.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import torch
from megatron.core.pipeline_parallel import get_forward_backward_func

from vzero_nemo.generation.generate import unwrap_model
from vzero_nemo.generation.pipeline import PipelineStage
from vzero_nemo.models.batch import PromptBatch
from vzero_nemo.models.logprobs import token_logprobs
from vzero_nemo.parallel import cpu_compat


def batch_rows(batch: PromptBatch, rows: torch.Tensor) -> PromptBatch:
    """The rows `rows` (1-D long) of a batch with one image per row, in that order."""
    patches_B = batch.image_grid_thw.prod(dim=-1)
    starts_B = torch.cumsum(patches_B, 0) - patches_B
    pixels = [batch.pixel_values[int(starts_B[r]) : int(starts_B[r] + patches_B[r])] for r in rows]
    return replace(
        batch,
        input_ids=batch.input_ids[rows],
        attention_mask=batch.attention_mask[rows],
        position_ids=batch.position_ids[:, rows],
        next_position=batch.next_position[rows],
        pixel_values=torch.cat(pixels),
        image_grid_thw=batch.image_grid_thw[rows],
        lengths=batch.lengths[rows],
    )


@contextlib.contextmanager
def _eval_no_grad(vlm):
    was_training = vlm.training
    vlm.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        vlm.train(was_training)


def sequence_logprobs(
    model,
    batch: PromptBatch,
    response_mask_BT: torch.Tensor,
    *,
    micro_batch_size: int | None = None,
) -> torch.Tensor:
    """log p of every response token of `batch` -> [B, T] float32 (see the module docstring).

    `micro_batch_size` rows go through the model at once (default: the whole batch); a
    last partial micro-batch is filled with copies of row 0, whose results are dropped.
    """
    batch_size, width = batch.input_ids.shape
    if response_mask_BT.shape != (batch_size, width):
        raise ValueError(
            f"response_mask_BT shape {tuple(response_mask_BT.shape)} != input_ids shape "
            f"{(batch_size, width)}"
        )
    response_mask_BT = response_mask_BT.bool()
    if bool(response_mask_BT[:, 0].any()):
        raise ValueError("response_mask_BT[:, 0] must be False: the first token has no prediction")
    if bool((response_mask_BT & ~batch.attention_mask.bool()).any()):
        raise ValueError("response_mask_BT marks padding tokens; mark only real response tokens")
    micro = min(micro_batch_size or batch_size, batch_size)
    if micro < 1:
        raise ValueError(f"micro_batch_size={micro_batch_size} must be >= 1")
    num_micro = -(-batch_size // micro)
    rows = torch.cat([torch.arange(batch_size), torch.zeros(num_micro * micro - batch_size).long()])
    micro_batches = [batch_rows(batch, rows[i * micro : (i + 1) * micro]) for i in range(num_micro)]

    vlm = unwrap_model(model)
    stage = PipelineStage(vlm.language_model.pg_collection.pp)
    chunks = model if isinstance(model, list) else [model]
    with _eval_no_grad(vlm), cpu_compat.cuda_redirect():
        outputs = get_forward_backward_func()(
            forward_step_func=_forward_step,
            data_iterator=iter(micro_batches),
            model=chunks,
            num_microbatches=num_micro,
            seq_length=width,
            micro_batch_size=micro,
            forward_only=True,
            collect_non_loss_data=True,
        )
    device = next(vlm.parameters()).device
    logp_BT = torch.zeros(batch_size, width, dtype=torch.float32, device=device)
    if stage.is_last:
        logp_BT[:, 1:] = torch.cat(outputs, dim=0)[:batch_size]
    stage.broadcast_from_last(logp_BT)
    return logp_BT.cpu().masked_fill(~response_mask_BT, 0.0)


def _forward_step(data_iterator, model):
    """megatron-core forward step: training forward; on the last stage, token log-probs."""
    micro_batch = next(data_iterator)
    device = next(model.parameters()).device
    input_ids = micro_batch.input_ids.to(device)
    output = model(
        input_ids,
        micro_batch.position_ids.to(device),
        micro_batch.causal_mask().to(device),
        pixel_values=micro_batch.pixel_values.to(device),
        image_grid_thw=micro_batch.image_grid_thw.to(device),
    )

    def collect(logits_BTV: torch.Tensor, non_loss_data: bool = True) -> torch.Tensor:
        assert non_loss_data
        return token_logprobs(logits_BTV[:, :-1], input_ids[:, 1:])

    return output, collect
