"""Core attention for megatron-core's local layer spec through PyTorch's fused SDPA kernel.

Without transformer-engine (CPU), megatron-core's local spec computes attention unfused:
baddbmm -> masked_fill(-10000) -> softmax -> bmm, with a [B, heads, T, T] score tensor and
the keys repeated for grouped-query attention. `SDPACoreAttention` is the same module
(`DotProductAttention`: same constructor, same call signature, no parameters) whose forward
is one `torch.nn.functional.scaled_dot_product_attention` call: the fused flash kernel on
CPU (and on CUDA), grouped-query attention without copying the keys, about half the time of
the unfused path forward and backward for the tiny model's training batches. The provider
puts it into the local spec (`vzero_nemo.models.provider`); with transformer-engine the
spec's own fused attention stays.

Masks are megatron's: `attention_mask` (B, 1, Tq, Tk) bool, True = masked, or None for
causal attention. One difference is deliberate: a query whose keys are ALL masked (a
left-padding position) may attend to itself, so its output stays finite (the unfused path
spreads it uniformly over masked keys); no real token ever reads a padding position, so
real outputs are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.transformer.dot_product_attention import DotProductAttention


class SDPACoreAttention(DotProductAttention):
    """`DotProductAttention` through `scaled_dot_product_attention` (see the module doc)."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        attn_mask_type=None,
        attention_bias=None,
        packed_seq_params=None,
    ) -> torch.Tensor:
        """query [sq, b, heads, d], key/value [sk, b, groups, d] -> [sq, b, heads * d]."""
        if packed_seq_params is not None or attention_bias is not None:
            raise ValueError(
                "SDPACoreAttention takes neither packed sequences nor an attention bias; "
                "use transformer-engine's layer spec for them"
            )
        q_BHTD = query.permute(1, 2, 0, 3)
        k_BGTD = key.permute(1, 2, 0, 3)
        v_BGTD = value.permute(1, 2, 0, 3)
        heads, groups = q_BHTD.shape[1], k_BGTD.shape[1]
        dropout = self.attention_dropout.p if self.training else 0.0
        sq_len, sk_len = q_BHTD.shape[2], k_BGTD.shape[2]
        if attention_mask is None and sq_len != sk_len:
            # KV-cached decoding without a mask: queries are the LAST sq_len positions, so the
            # causal mask is bottom-right aligned (SDPA's is_causal aligns it top-left).
            attention_mask = ~torch.ones(
                sq_len, sk_len, dtype=torch.bool, device=q_BHTD.device
            ).tril(diagonal=sk_len - sq_len)[None, None]
        if attention_mask is None:
            out_BHTD = F.scaled_dot_product_attention(
                q_BHTD,
                k_BGTD,
                v_BGTD,
                is_causal=True,
                dropout_p=dropout,
                scale=self.softmax_scale,
                enable_gqa=heads != groups,
            )
        else:
            out_BHTD = F.scaled_dot_product_attention(
                q_BHTD,
                k_BGTD,
                v_BGTD,
                attn_mask=_allowed(attention_mask),
                dropout_p=dropout,
                scale=self.softmax_scale,
                enable_gqa=heads != groups,
            )
        sq, b = query.shape[0], query.shape[1]
        return out_BHTD.permute(2, 0, 1, 3).reshape(sq, b, heads * query.shape[-1])


def _allowed(mask_B1QK: torch.Tensor) -> torch.Tensor:
    """SDPA's boolean mask (True = may attend) from megatron's (True = masked); a query with
    no allowed key may attend to its own position (bottom-right aligned, as causal masks)."""
    allowed = ~mask_B1QK
    q, k = allowed.shape[-2:]
    stranded_B1Q1 = ~allowed.any(dim=-1, keepdim=True)
    own_QK = torch.zeros(q, k, dtype=torch.bool, device=allowed.device)
    rows = torch.arange(q, device=allowed.device)
    own_QK[rows, rows + (k - q)] = True
    return allowed | (stranded_B1Q1 & own_QK)  # no host sync: applied to every query
