"""Transformers configs of our dimensions (needs transformers only, no Megatron).

    config = hf_config_from_dims(dims, special_ids, vocab_size)   # Qwen2_5_VLConfig
    summary = config_summary(config)                               # the fields we check

`hf_convert.hf_config_for` applies this to a `ModelConfig`; `random_checkpoint` writes it next
to random weights; `config_summary` is what `hf_convert.check_hf_config` compares between a
checkpoint and the model we build.
"""

from __future__ import annotations

from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

from vzero_nemo.models.sizes import Qwen25VLDims
from vzero_nemo.models.tokenizer import SpecialTokenIds


def vision_config_for(dims: Qwen25VLDims) -> Qwen2_5_VLVisionConfig:
    """The transformers vision-tower config of a size (the tower is HF's module)."""
    v = dims.vision
    return Qwen2_5_VLVisionConfig(
        depth=v.depth,
        hidden_size=v.hidden_size,
        hidden_act="silu",
        intermediate_size=v.intermediate_size,
        num_heads=v.num_heads,
        in_channels=3,
        patch_size=v.patch_size,
        spatial_merge_size=v.spatial_merge_size,
        temporal_patch_size=v.temporal_patch_size,
        tokens_per_second=v.tokens_per_second,
        window_size=v.window_size,
        out_hidden_size=dims.hidden_size,
        fullatt_block_indexes=list(v.fullatt_block_indexes),
    )


def hf_config_from_dims(
    dims: Qwen25VLDims, ids: SpecialTokenIds, vocab_size: int
) -> Qwen2_5_VLConfig:
    """The `Qwen2_5_VLConfig` of `dims` with these special-token ids and embedding rows."""
    text = dict(
        vocab_size=vocab_size,
        hidden_size=dims.hidden_size,
        intermediate_size=dims.ffn_hidden_size,
        num_hidden_layers=dims.num_layers,
        num_attention_heads=dims.num_attention_heads,
        num_key_value_heads=dims.num_query_groups,
        hidden_act="silu",
        rms_norm_eps=dims.layernorm_epsilon,
        max_position_embeddings=dims.max_position_embeddings,
        rope_parameters=dict(
            rope_type="default", rope_theta=dims.rotary_base, mrope_section=list(dims.mrope_section)
        ),
        bos_token_id=ids.pad,
        eos_token_id=ids.im_end,
        pad_token_id=ids.pad,
        tie_word_embeddings=dims.tie_word_embeddings,
    )
    return Qwen2_5_VLConfig(
        architectures=["Qwen2_5_VLForConditionalGeneration"],
        text_config=text,
        vision_config=vision_config_for(dims).to_dict(),
        image_token_id=ids.image_pad,
        video_token_id=ids.video_pad,
        vision_start_token_id=ids.vision_start,
        vision_end_token_id=ids.vision_end,
        tie_word_embeddings=dims.tie_word_embeddings,
    )


def config_summary(config: Qwen2_5_VLConfig) -> dict[str, object]:
    """The architecture fields of a config, as transformers reads them."""
    text, vision = config.text_config, config.vision_config
    rope = dict(getattr(text, "rope_parameters", None) or {})
    return {
        "text.hidden_size": text.hidden_size,
        "text.intermediate_size": text.intermediate_size,
        "text.num_hidden_layers": text.num_hidden_layers,
        "text.num_attention_heads": text.num_attention_heads,
        "text.num_key_value_heads": text.num_key_value_heads,
        "text.vocab_size": text.vocab_size,
        "text.rope_theta": float(rope.get("rope_theta", 0.0)),
        "text.mrope_section": list(rope.get("mrope_section") or []),
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "vision.depth": vision.depth,
        "vision.hidden_size": vision.hidden_size,
        "vision.intermediate_size": vision.intermediate_size,
        "vision.num_heads": vision.num_heads,
        "vision.patch_size": vision.patch_size,
        "vision.spatial_merge_size": vision.spatial_merge_size,
        "vision.temporal_patch_size": vision.temporal_patch_size,
        "vision.window_size": vision.window_size,
        "vision.fullatt_block_indexes": list(vision.fullatt_block_indexes),
        "vision.out_hidden_size": vision.out_hidden_size,
    }
