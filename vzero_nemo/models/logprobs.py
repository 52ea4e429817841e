"""Token log-probs and entropy from vocabulary-parallel logits, without gathering them.

Under tensor parallelism each rank holds logits for V / TP vocabulary entries. Both functions
reduce over the tensor-parallel group with autograd-aware collectives (megatron-core), so they
give the full-vocabulary values on every TP rank and their gradients flow to the local shard.
At TP = 1 they equal `log_softmax(logits).gather(target)` and the softmax entropy.

    logp_BT = token_logprobs(logits_BTV, target_BT)      # = -vocab_parallel_cross_entropy
    ent_BT = token_entropy(logits_BTV)

`masked_cross_entropy` is a megatron `GPTModel` output processor: the output layer and the
cross entropy only where a loss mask is non-zero (the policy's training forward and
`vzero_nemo.generation.score` use it).
"""

from __future__ import annotations

import torch
from megatron.core import parallel_state
from megatron.core.tensor_parallel import (
    reduce_from_tensor_model_parallel_region,
    vocab_parallel_cross_entropy,
)

from vzero_nemo.parallel.groups import to_comm


def _check(logits: torch.Tensor, target: torch.Tensor | None = None) -> None:
    if logits.dim() < 2:
        raise ValueError(f"logits must be (..., V_local), got shape {tuple(logits.shape)}")
    if target is not None and target.shape != logits.shape[:-1]:
        raise ValueError(
            f"target shape {tuple(target.shape)} must equal logits shape without the vocab "
            f"dimension, {tuple(logits.shape[:-1])}"
        )


def token_logprobs(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: logits (..., V / TP) of this rank's vocab shard, target
    (...) long global token ids -> (...) float32. Differentiable w.r.t. logits."""
    _check(logits, target)
    # megatron's kernel edits its input in place; hand it a private fp32 copy.
    private = logits.clone() if logits.dtype == torch.float32 else logits.float()
    return -vocab_parallel_cross_entropy(private, target)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per position over the FULL vocabulary: logits (..., V / TP)
    -> (...) float32. Differentiable w.r.t. logits."""
    _check(logits)
    logits = logits.float()
    # The max only stabilises exp(); it cancels exactly, so it needs no gradient.
    global_max = to_comm(logits.detach().amax(dim=-1))
    torch.distributed.all_reduce(
        global_max,
        op=torch.distributed.ReduceOp.MAX,
        group=parallel_state.get_tensor_model_parallel_group(),
    )
    global_max = global_max.to(logits.device)
    shifted = logits - global_max.unsqueeze(-1)
    exp = shifted.exp()
    sum_exp = reduce_from_tensor_model_parallel_region(exp.sum(dim=-1))
    sum_exp_logit = reduce_from_tensor_model_parallel_region((exp * shifted).sum(dim=-1))
    # H = log Z - E[l] with l the shifted logits: both sums are over the full vocabulary.
    return sum_exp.log() - sum_exp_logit / sum_exp


def masked_cross_entropy(
    *, hidden_states, output_layer, output_weight, labels, context, scale_logits, **kwargs
) -> torch.Tensor:
    """`GPTModel` output processor: cross entropy (B, T) at the positions where the loss
    mask `context` (B, T) is non-zero, 0 elsewhere; hidden_states (T, B, H)."""
    compute_loss = kwargs["compute_language_model_loss"]
    selected_TB = (context != 0).t().to(hidden_states.device)
    hidden_N1H = hidden_states[selected_TB].unsqueeze(1)
    logits_N1V, _ = output_layer(hidden_N1H, weight=output_weight, runtime_gather_output=False)
    labels_1N = labels.t()[selected_TB].unsqueeze(0)
    ce_1N = compute_loss(labels_1N, scale_logits(logits_N1V))
    ce_TB = hidden_states.new_zeros(selected_TB.shape, dtype=ce_1N.dtype)
    ce_TB[selected_TB] = ce_1N[0]
    return ce_TB.t()
