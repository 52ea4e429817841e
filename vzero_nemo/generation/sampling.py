"""Sampling parameters and the per-step token sampler (pure tensor functions).

The sampler draws one uniform number per sequence and step from the caller's seeded
`torch.Generator` and picks the token by inverse CDF. Every rank of a model-parallel group
draws the same numbers whether or not it holds logits, so generator states stay in step
across tensor- and pipeline-parallel ranks, and a sequence's sample depends only on its row,
the step and its own logits (not on the other rows of the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(kw_only=True, slots=True)
class SamplingParams:
    temperature: float = 0.8
    """Softmax temperature of the sampling distribution; 0 means greedy (argmax). Returned
    log-probs are always those of the untempered model (temperature 1), see `generate`."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability
    reaches `top_p` (after temperature); 1.0 disables it."""
    max_new_tokens: int = 64
    """Tokens generated per sequence at most (the stop token included)."""
    stop_token_ids: tuple[int, ...] = ()
    """A sequence finishes after sampling one of these (kept as its last token), e.g. the
    tokenizer's `<|im_end|>` and `<|endoftext|>`."""
    banned_token_ids: tuple[int, ...] = ()
    """Never sampled (their logits are masked before greedy or random choice), e.g. the
    vision placeholders, which in a response would break the image-token bookkeeping."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 = greedy)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]; use 1.0 to disable it")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        self.stop_token_ids = tuple(int(t) for t in self.stop_token_ids)
        self.banned_token_ids = tuple(int(t) for t in self.banned_token_ids)


def draw_uniforms(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One U[0, 1) number per sequence, float64, from the CPU generator (device-independent)."""
    return torch.rand(batch_size, generator=generator, dtype=torch.float64)


def sample_tokens(
    logits_BV: torch.Tensor, params: SamplingParams, uniform_B: torch.Tensor
) -> torch.Tensor:
    """Next token per row of full-vocabulary logits [B, V] -> LongTensor [B].

    Greedy when `params.temperature == 0`; else inverse-CDF sampling from
    softmax(logits / temperature), restricted to the top-p nucleus when `top_p < 1`.
    `params.banned_token_ids` are never picked.
    """
    # One float64 copy, edited in place (the same values as banning in float32 first).
    logits_BV = logits_BV.double()
    if params.banned_token_ids:
        logits_BV.index_fill_(-1, _ids(params.banned_token_ids, logits_BV), -torch.inf)
    if params.temperature == 0.0:
        return logits_BV.argmax(dim=-1)
    probs_BV = torch.softmax(logits_BV.div_(params.temperature), dim=-1)
    if params.top_p < 1.0:
        probs_BV, order_BV = probs_BV.sort(dim=-1, descending=True, stable=True)
        mass_before_BV = probs_BV.cumsum(dim=-1) - probs_BV
        probs_BV.masked_fill_(mass_before_BV >= params.top_p, 0.0)
    else:
        order_BV = None
    cdf_BV = probs_BV.cumsum_(dim=-1)
    total_B1 = cdf_BV[:, -1:]
    pick_B = torch.searchsorted(cdf_BV, uniform_B.to(cdf_BV.device)[:, None] * total_B1, right=True)
    # u * total rounded up to the total itself finds no column; take the first column whose
    # CDF reaches the total, the last token with non-zero mass.
    over_B = (pick_B >= cdf_BV.shape[-1]).squeeze(-1)
    if bool(over_B.any()):
        pick_B[over_B] = (cdf_BV[over_B] < total_B1[over_B]).sum(dim=-1, keepdim=True)
    if order_BV is not None:
        pick_B = order_BV.gather(-1, pick_B)
    return pick_B.squeeze(-1)


def _ids(ids: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.long, device=like.device)
