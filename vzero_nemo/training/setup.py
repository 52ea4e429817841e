"""Build the policy stack of a run: process groups, tokenizer, policy and reference chunks,
DDP, megatron-core optimizer and LR schedule. Shared by self-play and pre-training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from megatron.core.enums import ModelType
from megatron.core.tensor_parallel import set_defaults_if_not_set_tensor_model_parallel_attributes

from vzero_nemo.config import VZeroConfig
from vzero_nemo.models.provider import build_policy
from vzero_nemo.models.tokenizer import load_tokenizer
from vzero_nemo.parallel.groups import ParallelState, initialize_parallel, seed_all
from vzero_nemo.training import checkpoint as ckpt
from vzero_nemo.training import engine


@dataclass(slots=True)
class PolicyStack:
    par: ParallelState
    tokenizer: Any
    policy: list[Any]
    reference: list[Any] | None
    optimizer: Any
    scheduler: Any


def build_chunks(cfg: VZeroConfig, tokenizer, *, initialize: bool = True) -> list[Any]:
    """This rank's model chunks, initialised from the seeded CPU generator (or left for an
    import to fill with `initialize=False`)."""
    seed_all(cfg.train.seed)  # the reference is built from the same seed: same weights
    vpp = cfg.parallel.virtual_pipeline_model_parallel_size
    stages = [None] if vpp is None else list(range(vpp))
    chunks = []
    for vp_stage in stages:
        model = build_policy(
            cfg.model, cfg.parallel, vp_stage=vp_stage, tokenizer=tokenizer, initialize=initialize
        )
        model.model_type = ModelType.encoder_or_decoder  # what megatron's schedules look up
        for param in model.parameters():  # DDP / optimizer read these on every parameter
            set_defaults_if_not_set_tensor_model_parallel_attributes(param)
        chunks.append(model.to(_device()))
    return chunks


def _import_hf(cfg: VZeroConfig, policy: list[Any], reference: list[Any] | None) -> None:
    """Policy weights from model.hf_path (streamed, sharded by Megatron-Bridge); the frozen
    reference starts as an exact copy of them."""
    from vzero_nemo.models.hf_convert import import_hf_weights

    with engine.compat_scope():
        import_hf_weights(policy, cfg.model)
    for ref_chunk, chunk in zip(reference or [], policy):
        weights = dict(chunk.named_parameters())
        for name, param in ref_chunk.named_parameters():
            param.data.copy_(weights[name].data)


def _device():
    from vzero_nemo.parallel.groups import get_parallel_state

    return get_parallel_state().device


def build_stack(
    cfg: VZeroConfig, *, with_reference: bool, schedule: engine.LRSchedule | None = None
) -> PolicyStack:
    """Everything a run trains with; `schedule` defaults to the self-play LR schedule."""
    par = initialize_parallel(cfg.parallel, cfg.train.seed)
    tokenizer = load_tokenizer(cfg.model)
    # The Hugging Face checkpoint (model.hf_path) is the starting point unless a Megatron
    # one (model.init_checkpoint) is given; a resumed run overwrites the policy later.
    from_hf = cfg.model.init_checkpoint is None and cfg.model.hf_path is not None
    policy = build_chunks(cfg, tokenizer, initialize=not from_hf)
    if cfg.train.share_prompts and not policy[0].config.attention_mask_is_applied:
        raise ValueError(
            "train.share_prompts=true needs an attention that applies its mask, but this "
            "layer spec's fused attention (transformer-engine) is causal-only; set "
            "train.share_prompts=false"
        )
    reference = build_chunks(cfg, tokenizer, initialize=not from_hf) if with_reference else None
    if cfg.model.init_checkpoint is not None:
        with engine.compat_scope():
            ckpt.load_weights(cfg.model.init_checkpoint, policy)
            if reference is not None:
                ckpt.load_weights(cfg.model.init_checkpoint, reference)
    elif from_hf:
        _import_hf(cfg, policy, reference)
    if reference is not None:
        for chunk in reference:
            chunk.eval()
            chunk.config.calculate_per_token_loss = True
            for p in chunk.parameters():
                p.requires_grad_(False)
            if cfg.model.offload_reference and par.device.type == "cuda":
                chunk.to("cpu")
    policy = [engine.wrap_ddp(chunk, cfg) for chunk in policy]
    schedule = schedule or engine.LRSchedule.self_play(cfg)
    optimizer, scheduler = engine.build_optimizer(policy, cfg, schedule)
    engine.configure_model_config(policy, optimizer)
    return PolicyStack(par, tokenizer, policy, reference, optimizer, scheduler)
