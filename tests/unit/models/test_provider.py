"""Providers of the named sizes: published dimensions, no weights allocated."""

from __future__ import annotations

import pytest
import torch

from vzero_nemo.config import ModelConfig, ParallelConfig
from vzero_nemo.models.provider import VZeroQwen25VLProvider, provider_for
from vzero_nemo.models.sizes import SIZES, dims_for, num_parameters, padded_vocab_size

pytestmark = pytest.mark.unit

# Qwen/Qwen2.5-VL-{7B,32B,72B}-Instruct config.json:
# (layers, hidden, ffn, heads, kv heads, vision intermediate, total parameters)
PUBLISHED = {
    "7b": (28, 3584, 18944, 28, 4, 3420, 8_292_166_656),
    "32b": (64, 5120, 27648, 40, 8, 3456, 33_452_718_336),
    "72b": (80, 8192, 29568, 64, 8, 3456, 73_410_777_344),
}


@pytest.mark.parametrize("size", sorted(PUBLISHED))
def test_published_sizes(size):
    layers, hidden, ffn, heads, groups, vision_ffn, total = PUBLISHED[size]
    p = provider_for(ModelConfig(size=size, params_dtype="bf16"))
    assert isinstance(p, VZeroQwen25VLProvider) and p.size == size
    got = (p.num_layers, p.hidden_size, p.ffn_hidden_size, p.num_attention_heads)
    assert got == (layers, hidden, ffn, heads)
    assert (p.num_query_groups, p.kv_channels, p.vocab_size) == (groups, 128, 152064)
    assert p.position_embedding_type == "mrope" and p.mrope_section == [16, 24, 24]
    assert p.rotary_base == 1e6 and p.layernorm_epsilon == 1e-6
    assert p.add_qkv_bias and not p.add_bias_linear and p.gated_linear_unit
    assert p.normalization == "RMSNorm" and not p.share_embeddings_and_output_weights
    assert p.params_dtype == torch.bfloat16 and p.bf16
    assert (p.image_token_id, p.vision_start_token_id, p.eos_token_id) == (151655, 151652, 151645)
    v = p.vision_config
    assert (v.depth, v.hidden_size, v.intermediate_size, v.num_heads) == (32, 1280, vision_ffn, 16)
    assert (v.patch_size, v.spatial_merge_size, v.window_size) == (14, 2, 112)
    assert list(v.fullatt_block_indexes) == [7, 15, 23, 31] and v.out_hidden_size == hidden
    assert num_parameters(dims_for(size), 152064)["total"] == total


def test_tiny_dims_and_vocab():
    p = provider_for(ModelConfig(size="tiny"))
    assert (p.num_layers, p.hidden_size, p.num_attention_heads, p.num_query_groups) == (
        4,
        128,
        4,
        2,
    )
    assert p.vocab_size == 2048 and p.mrope_section == [4, 6, 6] and sum(p.mrope_section) == 16
    assert (p.vision_config.patch_size, p.vision_config.depth) == (8, 2)
    assert p.params_dtype == torch.float32
    # CPU: megatron-core local layers, nothing fused.
    assert p.use_cpu_initialization and not p.gradient_accumulation_fusion
    assert not (p.masked_softmax_fusion or p.bias_activation_fusion or p.apply_rope_fusion)
    assert num_parameters(dims_for("tiny"), 2048) == {
        "vision": 219_072,
        "language": 1_509_504,
        "total": 1_728_576,
    }


def test_parallel_and_training_fields_reach_the_config():
    par = ParallelConfig(
        tensor_model_parallel_size=8,
        pipeline_model_parallel_size=4,
        virtual_pipeline_model_parallel_size=2,
        sequence_parallel=True,
    )
    p = provider_for(ModelConfig(size="72b", recompute="full", freeze_vision=True), par)
    assert (p.tensor_model_parallel_size, p.pipeline_model_parallel_size) == (8, 4)
    assert p.virtual_pipeline_model_parallel_size == 2 and p.sequence_parallel
    assert (p.recompute_granularity, p.recompute_method, p.recompute_num_layers) == (
        "full",
        "uniform",
        1,
    )
    assert p.freeze_vision_model and p.freeze_vision_projection
    assert not p.freeze_language_model


def test_padded_vocab_and_unknown_size():
    assert [padded_vocab_size(n) for n in (1, 128, 129, 151665)] == [128, 128, 256, 151680]
    assert set(SIZES) == {"tiny", "tiny_s", "tiny_l", "7b_1layer", "7b", "32b", "72b"}
    with pytest.raises(ValueError, match="one of"):
        dims_for("13b")
