"""Tiny models and fixed batches for the layout-equivalence worker (`_parallel_worker.py`).

- `gpt`: a Qwen2-style megatron-core GPTModel with the local layer spec (RMSNorm, SwiGLU,
  GQA, QKV bias, RoPE, untied embeddings), 4 layers.
- `qwen25vl`: Megatron-Bridge's Qwen2.5-VL (HF vision tower + megatron language model with
  MRoPE), 2 language layers, every sequence holding one 32x32 image (4 merged tokens).

Every batch has `BATCH` sequences of `SEQ` tokens whose loss mask starts at a different
position per sequence (13, 10, 7, 4 response tokens), so a per-micro-batch mean and the
global-token mean disagree and only the latter is layout-invariant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vzero_nemo.config import ParallelConfig

VOCAB, SEQ, BATCH, MICRO = 128, 16, 4, 2
RESPONSE_STARTS = (3, 6, 9, 12)

# Qwen2.5-VL special tokens of the tiny vocabulary.
BOS, EOS, VISION_START, VISION_END, IMAGE, VIDEO = 1, 2, 120, 121, 122, 123
PATCH, MERGE, TEMPORAL = 8, 2, 2
IMAGE_GRID = (1, 4, 4)  # (t, h, w) in patches: 16 patches -> 4 tokens after 2x2 merging


def _common_config() -> dict:
    return dict(
        hidden_size=32,
        ffn_hidden_size=48,
        num_attention_heads=4,
        num_query_groups=2,
        kv_channels=8,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        add_qkv_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        use_cpu_initialization=True,
        gradient_accumulation_fusion=False,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        calculate_per_token_loss=True,
        pipeline_dtype=torch.float32,
    )


def _parallel_fields(parallel: ParallelConfig) -> dict:
    return dict(
        tensor_model_parallel_size=parallel.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel.virtual_pipeline_model_parallel_size,
    )


def _loss_mask() -> torch.Tensor:
    mask = torch.zeros(BATCH, SEQ)
    for row, start in enumerate(RESPONSE_STARTS):
        mask[row, start:] = 1.0
    return mask


# ------------------------------------------------------------------ megatron-core GPT


def build_gpt(parallel: ParallelConfig, pre_process: bool, post_process: bool, vp_stage):
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    config = TransformerConfig(num_layers=4, **_common_config(), **_parallel_fields(parallel))
    return GPTModel(
        config=config,
        transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=VOCAB,
        max_sequence_length=SEQ,
        pre_process=pre_process,
        post_process=post_process,
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        vp_stage=vp_stage,
    )


def gpt_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
    return {
        "tokens": tokens[:, :-1],
        "labels": tokens[:, 1:],
        "position_ids": torch.arange(SEQ).expand(BATCH, SEQ),
        "loss_mask": _loss_mask(),
    }


def gpt_forward(model, mb: dict[str, torch.Tensor], with_labels: bool) -> torch.Tensor:
    labels = mb["labels"] if with_labels else None
    return model(mb["tokens"], mb["position_ids"], attention_mask=None, labels=labels)


# ------------------------------------------------------------------ Bridge Qwen2.5-VL


def build_qwen25vl(parallel: ParallelConfig, pre_process: bool, post_process: bool, vp_stage):
    from megatron.bridge.models.qwen_vl.qwen25_vl_provider import Qwen25VLModelProvider
    from megatron.core.enums import ModelType
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.tensor_parallel import (
        set_defaults_if_not_set_tensor_model_parallel_attributes,
    )
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

    vision = Qwen2_5_VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=32,
        patch_size=PATCH,
        spatial_merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
        window_size=32,
        fullatt_block_indexes=[1],
    )
    provider = Qwen25VLModelProvider(
        num_layers=2,
        **_common_config(),
        **_parallel_fields(parallel),
        mrope_section=[1, 1, 2],  # sums to kv_channels / 2
        vocab_size=VOCAB,
        seq_length=SEQ,
        make_vocab_size_divisible_by=1,
        cross_entropy_loss_fusion=False,
        share_embeddings_and_output_weights=False,
        vision_config=vision,
        bos_token_id=BOS,
        eos_token_id=EOS,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
    )
    provider.finalize()
    model = provider.provide(pre_process=pre_process, post_process=post_process, vp_stage=vp_stage)
    # What Bridge's provide_distributed_model adds (megatron's schedules read model_type;
    # the HF vision tower's parameters get the default TP attributes).
    model.model_type = ModelType.encoder_or_decoder
    for param in model.parameters():
        set_defaults_if_not_set_tensor_model_parallel_attributes(param)
    return model


def qwen25vl_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    t, h, w = IMAGE_GRID
    num_image_tokens = t * h * w // MERGE**2
    prefix = [BOS, VISION_START] + [IMAGE] * num_image_tokens + [VISION_END]
    text = torch.randint(3, VISION_START, (BATCH, SEQ + 1 - len(prefix)), generator=gen)
    tokens = torch.cat([torch.tensor(prefix).expand(BATCH, -1), text], dim=1)
    patch_dim = 3 * TEMPORAL * PATCH * PATCH
    return {
        "tokens": tokens[:, :-1],
        "labels": tokens[:, 1:],
        "pixel_values": torch.randn(BATCH, t * h * w, patch_dim, generator=gen),
        "image_grid_thw": torch.tensor(IMAGE_GRID).expand(BATCH, 1, 3).clone(),
        "loss_mask": _loss_mask(),
    }


def qwen25vl_forward(model, mb: dict[str, torch.Tensor], with_labels: bool) -> torch.Tensor:
    output = model(
        input_ids=mb["tokens"],
        pixel_values=mb["pixel_values"].flatten(0, 1),
        image_grid_thw=mb["image_grid_thw"].flatten(0, 1),
        labels=mb["labels"] if with_labels else None,
    )
    # Bridge's Qwen25VLModel feeds the decoder a transposed (non-contiguous) embedding, and
    # with the local layer spec the stage output keeps those strides; p2p send needs a
    # contiguous tensor (gloo raises "input tensor has to be contiguous").
    return output.contiguous()


@dataclass(frozen=True, slots=True)
class TinyModel:
    build: Callable
    """(parallel, pre_process, post_process, vp_stage) -> one model chunk."""
    make_batch: Callable[[], dict[str, torch.Tensor]]
    forward: Callable
    """(model, micro_batch, with_labels) -> per-token loss [b, s] or logits [b, s, V/TP]."""


MODELS = {
    "gpt": TinyModel(build=build_gpt, make_batch=gpt_batch, forward=gpt_forward),
    "qwen25vl": TinyModel(
        build=build_qwen25vl, make_batch=qwen25vl_batch, forward=qwen25vl_forward
    ),
}
