"""Clipped policy-gradient loss with a KL penalty, aggregated exactly across shards.

Per response token t of sequence b (PPO, Schulman et al. 2017; GRPO, Shao et al. 2024):

    rho   = exp(logp - old_logp)
    l_bt  = -min(rho * A_b, clip(rho, 1 - eps_low, 1 + eps_high) * A_b) + tau * KL_bt

with KL_bt one of Schulman's estimators of KL(pi || pi_ref) from d = ref_logp - logp:
k1 = -d, k2 = d^2 / 2, k3 = exp(d) - d - 1 (default; unbiased and non-negative).

Aggregation (`grpo.loss_aggregation`):
- `global_token`: loss = sum_{b,t} l_bt * mask_bt / global_num_tokens, where
  global_num_tokens counts the response tokens of the WHOLE step (all micro-batches, all DP
  ranks). Each shard returns its own share, so summing shard losses (and their gradients)
  gives exactly the full-batch loss for any DP size and micro-batching.
- `sequence_mean`: each sequence's token mean, summed and divided by global_num_sequences
  (sequences with at least one response token), the official code's reduction.

Like Megatron's `loss_func`, `policy_loss` returns (loss, num_units, metrics): num_units is
this shard's token (or sequence) count; metrics map a name to a detached tensor([sum, count])
that ranks and micro-batches reduce by summation, then divide. If the global count is not
given, `loss` is the shard's unnormalised sum (divide by the reduced count yourself).
"""

from __future__ import annotations

import torch

from vzero_nemo.config import GRPOConfig

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from log-probs of the sampled tokens."""
    d = ref_logp - logp
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d * d
    if kind == "k3":
        return torch.exp(d) - d - 1
    raise ValueError(f"kl estimator {kind!r} is unknown; use one of {KL_ESTIMATORS}")


def count_tokens(mask_BT: torch.Tensor) -> int:
    """Response tokens in a shard (what to all-reduce into global_num_tokens)."""
    return int(mask_BT.sum())


def count_sequences(mask_BT: torch.Tensor) -> int:
    """Sequences with at least one response token (what to reduce into global_num_sequences)."""
    return int((mask_BT.sum(dim=-1) > 0).sum())


def per_token_loss(
    logp_BT: torch.Tensor,
    advantages_B: torch.Tensor,
    cfg: GRPOConfig,
    *,
    old_logp_BT: torch.Tensor | None = None,
    ref_logp_BT: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(l_BT, per-token stats {pg, kl, ratio, clipped}) before masking and aggregation."""
    old = logp_BT.detach() if old_logp_BT is None else old_logp_BT
    adv = advantages_B.unsqueeze(-1) if advantages_B.dim() == 1 else advantages_B
    adv = adv.to(logp_BT.dtype)
    ratio = torch.exp(logp_BT - old)
    clipped_ratio = ratio.clamp(1 - cfg.clip_eps_low, 1 + cfg.clip_eps_high)
    unclipped, clipped = ratio * adv, clipped_ratio * adv
    pg = -torch.minimum(unclipped, clipped)
    if cfg.kl_coef > 0:
        if ref_logp_BT is None:
            raise ValueError(f"grpo.kl_coef={cfg.kl_coef} > 0 needs ref_logp_BT")
        kl = kl_estimate(logp_BT, ref_logp_BT, cfg.kl_estimator)
    else:
        kl = torch.zeros_like(logp_BT)
    stats = {
        "pg_loss": pg.detach(),
        "kl": kl.detach(),
        "ratio": ratio.detach(),
        "clip_fraction": (clipped < unclipped).to(logp_BT.dtype).detach(),
    }
    return pg + cfg.kl_coef * kl, stats


def policy_loss(
    logp_BT: torch.Tensor,
    advantages_B: torch.Tensor,
    mask_BT: torch.Tensor,
    cfg: GRPOConfig,
    *,
    old_logp_BT: torch.Tensor | None = None,
    ref_logp_BT: torch.Tensor | None = None,
    global_num_tokens: int | None = None,
    global_num_sequences: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, num_units, metrics) of one shard; see the module docstring.

    logp_BT: log-probs of the sampled response tokens under the policy (with grad), [B, T].
    advantages_B: [B] (or [B, T]). mask_BT: 1 on response tokens (including EOS), 0 elsewhere.
    old_logp_BT: behaviour log-probs (None = logp_BT.detach(), one update per rollout).
    ref_logp_BT: frozen reference log-probs (needed when kl_coef > 0).
    """
    if logp_BT.shape != mask_BT.shape:
        raise ValueError(f"logp_BT {tuple(logp_BT.shape)} != mask_BT {tuple(mask_BT.shape)}")
    if advantages_B.shape[0] != logp_BT.shape[0]:
        raise ValueError(
            f"advantages_B has {advantages_B.shape[0]} rows, logp_BT {logp_BT.shape[0]}"
        )
    loss_BT, stats = per_token_loss(
        logp_BT, advantages_B, cfg, old_logp_BT=old_logp_BT, ref_logp_BT=ref_logp_BT
    )
    mask = mask_BT.to(logp_BT.dtype)
    tokens = mask.sum()
    metrics = {
        name: torch.stack([(value * mask).sum(), tokens]).detach() for name, value in stats.items()
    }
    if cfg.loss_aggregation == "global_token":
        loss, units, denominator = (loss_BT * mask).sum(), tokens, global_num_tokens
    elif cfg.loss_aggregation == "sequence_mean":
        per_seq = mask.sum(dim=-1)
        seq_mean = (loss_BT * mask).sum(dim=-1) / per_seq.clamp(min=1)
        loss, units, denominator = seq_mean.sum(), (per_seq > 0).sum(), global_num_sequences
    else:
        raise ValueError(
            f"grpo.loss_aggregation={cfg.loss_aggregation!r}; use global_token or sequence_mean"
        )
    if denominator is not None:
        if denominator <= 0:
            raise ValueError(
                f"global count {denominator} must be > 0 (sum of count_tokens / "
                "count_sequences over every shard of the step)"
            )
        loss = loss / denominator
    return loss, units.detach(), metrics
