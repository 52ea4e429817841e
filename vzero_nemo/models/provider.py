"""Qwen2.5-VL policy providers: a subclass of Megatron-Bridge's `Qwen25VLModelProvider`.

    from vzero_nemo.models.provider import build_policy, provider_for
    provider = provider_for(cfg.model, cfg.parallel)      # VZeroQwen25VLProvider, finalized
    model = build_policy(cfg.model, cfg.parallel)         # one model chunk of this rank

`provider_for` fills the provider from the size's dimensions (`vzero_nemo.models.sizes`), the
tokenizer's special-token ids, `ModelConfig` (dtype, sequence length, recompute, freezing) and
`ParallelConfig` (TP / PP / VPP / sequence parallel are megatron config fields; the model code
never branches on them). Where transformer-engine is absent (CPU, or a GPU without TE; see
`vzero_nemo.parallel.cpu_compat`) it uses megatron-core's local layer spec with PyTorch's
fused attention kernel (`vzero_nemo.models.attention`), CPU initialisation and no other
fused kernels; with TE it keeps Bridge's TE spec and fusions.
`build_policy` needs megatron's parallel state initialised (see `vzero_nemo.parallel`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vzero_nemo.parallel import cpu_compat

cpu_compat.install()  # before Megatron-Bridge is imported (no-op with CUDA and TE)

from megatron.bridge.models.gpt_provider import local_layer_spec  # noqa: E402
from megatron.bridge.models.qwen_vl.qwen25_vl_provider import Qwen25VLModelProvider  # noqa: E402
from megatron.core import parallel_state  # noqa: E402
from megatron.core.enums import ModelType  # noqa: E402
from megatron.core.process_groups_config import ProcessGroupCollection  # noqa: E402
from megatron.core.transformer.enums import AttnBackend  # noqa: E402

from vzero_nemo.config import ModelConfig, ParallelConfig  # noqa: E402
from vzero_nemo.models.attention import SDPACoreAttention  # noqa: E402
from vzero_nemo.models.hf_config import vision_config_for  # noqa: E402
from vzero_nemo.models.qwen25vl import VZeroQwen25VLModel  # noqa: E402
from vzero_nemo.models.sizes import (  # noqa: E402
    Qwen25VLDims,
    check_parallel,
    model_dims,
    padded_vocab_size,
)
from vzero_nemo.models.tokenizer import (  # noqa: E402
    SpecialTokenIds,
    VLTokenizer,
    load_tokenizer,
    special_token_ids,
)

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def local_sdpa_layer_spec(config):
    """megatron-core's local layer spec with the core attention through PyTorch SDPA."""
    spec = local_layer_spec(config)
    spec.submodules.self_attention.submodules.core_attention = SDPACoreAttention
    return spec


@dataclass
class VZeroQwen25VLProvider(Qwen25VLModelProvider):
    """Bridge's Qwen2.5-VL provider building `VZeroQwen25VLModel` (explicit M-RoPE positions,
    KV-cache context passed through)."""

    size: str = "tiny"
    """Named size the provider was built for (recorded for checkpoints and logs)."""
    attention_mask_is_applied: bool = True
    """False with transformer-engine's causal-only fused attention, which ignores explicit
    masks: the model then accepts right-padded batches only (see `qwen25vl`)."""

    def provide(self, pre_process=None, post_process=None, vp_stage=None) -> VZeroQwen25VLModel:
        if pre_process is None or post_process is None:
            raise ValueError("pre_process and post_process must be resolved; use build_policy")
        model = VZeroQwen25VLModel(
            self, pre_process=pre_process, post_process=post_process, vp_stage=vp_stage
        )
        model.model_type = ModelType.encoder_or_decoder  # read by megatron's schedules
        if self.freeze_language_model or self.freeze_vision_model or self.freeze_vision_projection:
            model.freeze(
                freeze_language_model=self.freeze_language_model,
                freeze_vision_model=self.freeze_vision_model,
                freeze_vision_projection=self.freeze_vision_projection,
            )
        return model


def model_vocab(
    model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None
) -> tuple[SpecialTokenIds, int]:
    """(special-token ids, embedding rows) of the model of `model_cfg`."""
    ids = special_token_ids(model_cfg, tokenizer)
    dims = model_dims(model_cfg)
    if dims.vocab_size is not None:
        if tokenizer is not None and len(tokenizer) > dims.vocab_size:
            raise ValueError(
                f"tokenizer {tokenizer.name!r} has {len(tokenizer)} tokens but model.size="
                f"{model_cfg.size!r} embeds {dims.vocab_size}; use the checkpoint's tokenizer"
            )
        return ids, dims.vocab_size
    return ids, padded_vocab_size(len(tokenizer or load_tokenizer(model_cfg)))


def _uses_transformer_engine() -> bool:
    return cpu_compat.transformer_engine_available()


def provider_for(
    model_cfg: ModelConfig,
    parallel_cfg: ParallelConfig | None = None,
    *,
    tokenizer: VLTokenizer | None = None,
    dims: Qwen25VLDims | None = None,
) -> VZeroQwen25VLProvider:
    """A finalized provider for `model_cfg` under `parallel_cfg` (default: no parallelism).
    No weights are allocated: the dimensions come from `sizes.model_dims` (a named size, or
    `auto`: the checkpoint's config.json) unless `dims` replaces them (e.g. a reduced-depth
    model at a published width), checked against the parallel layout; the special-token ids
    and vocabulary size from `model_vocab` (tiny and auto: the tokenizer; 7B-72B: published)."""
    dims = dims or model_dims(model_cfg)
    parallel_cfg = parallel_cfg or ParallelConfig()
    ids, vocab_size = model_vocab(model_cfg, tokenizer)
    check_parallel(dataclasses.replace(dims, vocab_size=vocab_size), parallel_cfg, model_cfg)
    if model_cfg.params_dtype not in _DTYPES:
        raise ValueError(
            f"model.params_dtype={model_cfg.params_dtype!r}; use one of {list(_DTYPES)}"
        )
    provider = VZeroQwen25VLProvider(
        size=model_cfg.size,
        **_architecture_args(model_cfg, dims, vocab_size, ids),
        tensor_model_parallel_size=parallel_cfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel_cfg.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel_cfg.virtual_pipeline_model_parallel_size,
        sequence_parallel=parallel_cfg.sequence_parallel,
    )
    _set_recompute(provider, model_cfg)
    _set_kernels(provider)
    dtype = _DTYPES[model_cfg.params_dtype]
    provider.pipeline_dtype = dtype
    return provider.apply_overrides_and_finalize(dtype=dtype)


def _architecture_args(
    model_cfg: ModelConfig, dims: Qwen25VLDims, vocab_size: int, ids: SpecialTokenIds
) -> dict[str, Any]:
    """Qwen2.5-VL's architecture at `dims`, as provider fields."""
    return {
        "num_layers": dims.num_layers,
        "hidden_size": dims.hidden_size,
        "ffn_hidden_size": dims.ffn_hidden_size,
        "num_attention_heads": dims.num_attention_heads,
        "num_query_groups": dims.num_query_groups,
        "kv_channels": dims.head_dim,
        "vocab_size": vocab_size,
        "should_pad_vocab": False,
        "seq_length": model_cfg.seq_length,
        "normalization": "RMSNorm",
        "layernorm_epsilon": dims.layernorm_epsilon,
        "gated_linear_unit": True,
        "activation_func": F.silu,
        "add_qkv_bias": True,
        "add_bias_linear": False,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "share_embeddings_and_output_weights": dims.tie_word_embeddings,
        "position_embedding_type": "mrope",
        "mrope_section": list(dims.mrope_section),
        "rotary_base": dims.rotary_base,
        "vision_config": vision_config_for(dims),
        "bos_token_id": ids.pad,
        "eos_token_id": ids.im_end,
        "vision_start_token_id": ids.vision_start,
        "vision_end_token_id": ids.vision_end,
        "vision_token_id": ids.vision_pad,
        "image_token_id": ids.image_pad,
        "video_token_id": ids.video_pad,
        "freeze_vision_model": model_cfg.freeze_vision,
        "freeze_vision_projection": model_cfg.freeze_vision,
    }


def _set_recompute(provider: VZeroQwen25VLProvider, model_cfg: ModelConfig) -> None:
    """Activation recomputation (`model.recompute`)."""
    if model_cfg.recompute == "none":
        return
    provider.recompute_granularity = model_cfg.recompute
    if model_cfg.recompute == "full":
        provider.recompute_method = "uniform"
        provider.recompute_num_layers = 1


def _set_kernels(provider: VZeroQwen25VLProvider) -> None:
    """Transformer Engine kernels when present, else megatron-core's local layers."""
    if not _uses_transformer_engine():
        # No TE / apex (CPU, or a GPU without TE): megatron-core's local layers with PyTorch's
        # fused attention, weights initialised on the CPU generator (identical for any TP).
        provider.transformer_layer_spec = local_sdpa_layer_spec
        # Not AttnBackend.local: under it Bridge puts megatron's unfused DotProductAttention
        # back into the spec. `auto` keeps the spec's own core attention (no TE to select).
        provider.attention_backend = AttnBackend.auto
        provider.use_cpu_initialization = True
        provider.gradient_accumulation_fusion = False
        provider.masked_softmax_fusion = False
        provider.bias_activation_fusion = False
        provider.bias_dropout_fusion = False
        provider.apply_rope_fusion = False
        provider.cross_entropy_loss_fusion = False
        provider.persist_layer_norm = False
    else:
        provider.attention_mask_is_applied = False


def build_policy(
    model_cfg: ModelConfig,
    parallel_cfg: ParallelConfig | None = None,
    *,
    pre_process: bool | None = None,
    post_process: bool | None = None,
    vp_stage: int | None = None,
    tokenizer: VLTokenizer | None = None,
    dims: Qwen25VLDims | None = None,
    initialize: bool = True,
) -> VZeroQwen25VLModel:
    """This rank's model chunk (`vp_stage` under VPP), randomly initialised from megatron's
    RNG state; weights come later from a checkpoint or `hf_convert.import_hf_weights`.
    `pre_process` / `post_process` default to this rank's first / last pipeline stage.
    `initialize=False` leaves megatron's weights unset for an import to fill: its CPU
    initialisation draws every tensor's full fp32 master copy on every rank (5 GB for a
    152064 x 8192 embedding), which an import would only overwrite."""
    if not parallel_state.model_parallel_is_initialized():
        raise ValueError(
            "megatron parallel state is not initialised; call "
            "vzero_nemo.parallel.initialize_parallel(...) before build_policy"
        )
    provider = provider_for(model_cfg, parallel_cfg, tokenizer=tokenizer, dims=dims)
    provider.perform_initialization = initialize
    pg_collection = ProcessGroupCollection.use_mpu_process_groups()
    provider._pg_collection = pg_collection
    if pre_process is None:
        pre_process = parallel_state.is_pipeline_first_stage(
            ignore_virtual=False, vp_stage=vp_stage
        )
    if post_process is None:
        post_process = parallel_state.is_pipeline_last_stage(
            ignore_virtual=False, vp_stage=vp_stage
        )
    model = provider.provide(pre_process=pre_process, post_process=post_process, vp_stage=vp_stage)
    # Every parameter in the training dtype, as megatron's Float16Module does: the provider
    # leaves the HF vision tower and the norm weights in fp32, and megatron-core's
    # mixed-precision optimizer maps its checkpoint state by indexing only the float16
    # parameters, so a model with fp32 parameters mixed in cannot save its optimizer state.
    # The optimizer keeps fp32 master copies of every parameter either way. Buffers (the
    # vision tower's rotary frequencies) keep their dtype: bf16 positions lose precision.
    dtype = _DTYPES[model_cfg.params_dtype]
    for param in model.parameters():
        param.data = param.data.to(dtype)
    return model
