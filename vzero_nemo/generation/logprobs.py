"""Log-probs of given sequences (prompt + response) under a policy or the frozen reference.

    from vzero_nemo.generation.logprobs import sequence_logprobs
    full = collate_prompts([p.extend(ids) for p, ids in zip(prompts, out.token_ids)], tok, cfg.model)
    logp_BT = sequence_logprobs(reference_model, full, response_mask_BT, micro_batch_size=8)

Column t of the result is log p(token t | tokens < t) where `response_mask_BT[:, t]` is True
and 0 elsewhere (column 0 has no prediction and must be False). The forward is the training
forward (`model(input_ids, position_ids, causal_mask, **batch.vision_inputs())`), run
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

import torch
from megatron.core.pipeline_parallel import get_forward_backward_func

from vzero_nemo.generation.generate import unwrap_model
from vzero_nemo.generation.pipeline import PipelineStage
from vzero_nemo.models.batch import PromptBatch
from vzero_nemo.models.logprobs import token_logprobs
from vzero_nemo.parallel import cpu_compat


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

    `micro_batch_size` rows go through the model at once (default: the whole batch). All
    micro-batches have that size (pipeline stages exchange fixed shapes): when it does not
    divide the batch, the last one is the batch's last `micro_batch_size` rows and only its
    rows not scored before are kept.
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
    if micro_batch_size is not None and micro_batch_size < 1:
        raise ValueError(f"micro_batch_size={micro_batch_size} must be >= 1 (or None: whole batch)")
    micro = min(micro_batch_size or batch_size, batch_size)
    starts = list(range(0, batch_size - micro + 1, micro))
    if starts[-1] + micro < batch_size:
        starts.append(batch_size - micro)
    micro_batches = [batch.rows(start, start + micro) for start in starts]

    vlm = unwrap_model(model)
    stage = PipelineStage(vlm.language_model.pg_collection.pp)
    chunks = model if isinstance(model, list) else [model]
    with _eval_no_grad(vlm), cpu_compat.cuda_redirect():
        outputs = get_forward_backward_func()(
            forward_step_func=_forward_step,
            data_iterator=iter(micro_batches),
            model=chunks,
            num_microbatches=len(micro_batches),
            seq_length=width,
            micro_batch_size=micro,
            forward_only=True,
            collect_non_loss_data=True,
        )
    device = next(vlm.parameters()).device
    logp_BT = torch.zeros(batch_size, width, dtype=torch.float32, device=device)
    if stage.is_last:
        for start, logp_MT in zip(starts, outputs):
            logp_BT[start : start + micro, 1:] = logp_MT  # rows scored twice: the later one stays
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
        image_of_row=micro_batch.image_of_row,
    )

    def collect(logits_BTV: torch.Tensor, non_loss_data: bool = True) -> torch.Tensor:
        assert non_loss_data
        return token_logprobs(logits_BTV[:, :-1], input_ids[:, 1:])

    return output, collect
