"""SDPACoreAttention equals megatron-core's unfused DotProductAttention on real queries,
forward and backward, for causal, right-padded and left-padded masks (grouped queries)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.unit

TOL = 1e-5
SQ, B, HEADS, GROUPS, DIM = 12, 3, 4, 2, 8


def _modules():
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.transformer_config import TransformerConfig

    from vzero_nemo.models.attention import SDPACoreAttention

    config = TransformerConfig(
        num_layers=1,
        hidden_size=HEADS * DIM,
        num_attention_heads=HEADS,
        num_query_groups=GROUPS,
        attention_dropout=0.0,
        masked_softmax_fusion=False,
    )
    args = dict(layer_number=1, attn_mask_type=AttnMaskType.causal, attention_type="self")
    return DotProductAttention(config, **args), SDPACoreAttention(config, **args)


def _mask(real_BT: torch.Tensor) -> torch.Tensor:
    from vzero_nemo.models.batch import causal_padding_mask

    return causal_padding_mask(real_BT)


LENGTHS = torch.tensor([SQ, 7, 4])
MASKS = {
    "causal": (None, torch.ones(B, SQ, dtype=torch.bool)),
    "right": (_mask(torch.arange(SQ) < LENGTHS[:, None]), torch.arange(SQ) < LENGTHS[:, None]),
    "left": (
        _mask(torch.arange(SQ) >= SQ - LENGTHS[:, None]),
        torch.arange(SQ) >= SQ - LENGTHS[:, None],
    ),
}


@pytest.mark.parametrize("kind", list(MASKS))
def test_sdpa_equals_unfused_attention_on_real_queries(megatron_1proc, kind):
    unfused, sdpa = _modules()
    mask, real_BT = MASKS[kind]
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(SQ, B, HEADS, DIM, generator=gen),
        torch.randn(SQ, B, GROUPS, DIM, generator=gen),
        torch.randn(SQ, B, GROUPS, DIM, generator=gen),
    ]
    real_TB1 = real_BT.t()[..., None]
    results = []
    for module in (unfused, sdpa):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = module(*leaves, mask)
        assert out.shape == (SQ, B, HEADS * DIM) and torch.isfinite(out).all()
        (out * real_TB1).square().sum().backward()  # the loss reads real queries only
        results.append((out * real_TB1, [leaf.grad for leaf in leaves]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert (out_a - out_b).abs().max().item() <= TOL
    for grad_a, grad_b in zip(grads_a, grads_b):
        assert (grad_a - grad_b).abs().max().item() <= TOL


def test_packed_sequences_are_refused(megatron_1proc):
    _, sdpa = _modules()
    q = torch.zeros(SQ, B, HEADS, DIM)
    kv = torch.zeros(SQ, B, GROUPS, DIM)
    with pytest.raises(ValueError, match="packed"):
        sdpa(q, kv, kv, None, packed_seq_params=object())
