"""Hugging Face Qwen2.5-VL <-> Megatron weights through Megatron-Bridge's AutoBridge.

    from vzero_nemo.models import hf_convert
    model = build_policy(cfg.model, cfg.parallel)            # random init
    hf_convert.import_hf_weights([model], cfg.model)          # from cfg.model.hf_path
    hf_convert.save_hf_checkpoint([model], cfg.model, "outputs/hf_export")

Import reads a LOCAL checkpoint directory only (`model.hf_path`; nothing is downloaded) and
first checks that its `config.json` matches the model's size (`check_hf_config`; with
`model.size=auto` the size is that config): the model is built from our provider, not from
the one Bridge derives from the config, because Bridge's Qwen2.5-VL provider keeps its default
M-RoPE sections and ignores the checkpoint's. Bridge reads the (sharded) safetensors lazily,
one tensor at a time, and every rank keeps only its own shard of each. Export
works for every size, `tiny` included (its HF config comes from `hf_config_for`); the result
loads with `Qwen2_5_VLForConditionalGeneration.from_pretrained`. Both directions run at any
TP / PP (Bridge shards and gathers) and must be called on every rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import torch

from vzero_nemo.parallel import cpu_compat

cpu_compat.install()  # before Megatron-Bridge is imported (no-op with CUDA and TE)

from megatron.bridge import AutoBridge  # noqa: E402
from transformers import Qwen2_5_VLConfig  # noqa: E402

from vzero_nemo.config import ModelConfig  # noqa: E402
from vzero_nemo.models.hf_config import config_summary, hf_config_from_dims  # noqa: E402
from vzero_nemo.models.hf_files import write_sharded  # noqa: E402
from vzero_nemo.models.provider import model_vocab  # noqa: E402
from vzero_nemo.models.sizes import AUTO, model_dims, uses_project_tokenizer  # noqa: E402
from vzero_nemo.models.tokenizer import (  # noqa: E402
    VLTokenizer,
    load_tokenizer,
    special_token_ids,
)


def hf_config_for(model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None) -> Qwen2_5_VLConfig:
    """The transformers config of `model_cfg`'s dimensions (ids and vocabulary as
    `model_vocab`)."""
    ids, vocab_size = model_vocab(model_cfg, tokenizer)
    return hf_config_from_dims(model_dims(model_cfg), ids, vocab_size)


def _raise_on_diffs(have: dict, want: dict, model_cfg: ModelConfig) -> None:
    diffs = [f"{k}: checkpoint {have[k]!r} != {want[k]!r}" for k in want if have[k] != want[k]]
    if diffs:
        raise ValueError(
            f"checkpoint config does not match model.size={model_cfg.size!r}: "
            + "; ".join(diffs)
            + ". Set model.size to the checkpoint's size, or model.size=auto to take the "
            "dimensions from its config.json."
        )


def check_hf_config(
    config: Qwen2_5_VLConfig, model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None
) -> None:
    """ValueError listing every field where a checkpoint's config differs from `model_cfg`:
    dimensions first, then the special-token ids (which may load the checkpoint's tokenizer).
    With `model.size=auto` the dimensions were read from this same config.json by
    `sizes.dims_from_hf_config`: the check then holds our reading against transformers'."""
    if model_cfg.size == AUTO:
        want = config_summary(hf_config_for(model_cfg, tokenizer))
    else:
        published = dataclasses.replace(model_cfg, hf_path=None, tokenizer_path=None)
        own_tokenizer = uses_project_tokenizer(model_cfg.size)
        want = config_summary(hf_config_for(published, tokenizer if own_tokenizer else None))
    _raise_on_diffs(config_summary(config), want, model_cfg)
    ids = special_token_ids(model_cfg, tokenizer)
    have_ids = {
        "image_token_id": config.image_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
    }
    want_ids = {
        "image_token_id": ids.image_pad,
        "vision_start_token_id": ids.vision_start,
        "vision_end_token_id": ids.vision_end,
    }
    _raise_on_diffs(have_ids, want_ids, model_cfg)


def auto_bridge(model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None) -> AutoBridge:
    """Bridge over `model_cfg.hf_path` (checked against the size), or config-only without it."""
    if model_cfg.hf_path is None:
        return AutoBridge.from_hf_config(hf_config_for(model_cfg, tokenizer))
    path = Path(model_cfg.hf_path)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model.hf_path={str(path)!r} holds no config.json; point it at a local "
            "Hugging Face Qwen2.5-VL directory (nothing is downloaded)"
        )
    bridge = AutoBridge.from_hf_pretrained(str(path), local_files_only=True)
    check_hf_config(bridge.hf_pretrained.config, model_cfg, tokenizer)
    return bridge


def import_hf_weights(model_chunks: list[torch.nn.Module], model_cfg: ModelConfig) -> None:
    """Load `model_cfg.hf_path`'s weights into this rank's model chunks (collective)."""
    if model_cfg.hf_path is None:
        raise ValueError("import_hf_weights needs model.hf_path (a local HF checkpoint directory)")
    auto_bridge(model_cfg).load_hf_weights(list(model_chunks))


def export_hf_weights(
    model_chunks: list[torch.nn.Module], model_cfg: ModelConfig
) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF parameter name, full CPU tensor) pairs of the model (collective; every rank
    receives every tensor)."""
    bridge = auto_bridge(model_cfg)
    exported = bridge.export_hf_weights(list(model_chunks), cpu=True, show_progress=False)
    yield from ((name, tensor) for name, tensor in exported)


def save_hf_checkpoint(
    model_chunks: list[torch.nn.Module],
    model_cfg: ModelConfig,
    out_dir: str | Path,
    *,
    max_shard_bytes: int = 5 * 2**30,
) -> Path:
    """Write a Hugging Face checkpoint to `out_dir` (collective; rank 0 writes): config and
    tokenizer (the imported checkpoint's artifacts, or tiny's config + tokenizer) and the
    weights as safetensors shards of at most `max_shard_bytes` with an index, written tensor
    by tensor (`hf_files.write_sharded`). Memory per rank: its parameters plus Bridge's
    gather of the tensor being exported, which every rank receives whole (a shard list and
    their concatenation: twice the largest tensor under TP). (Bridge's own
    `save_hf_pretrained` imports nvidia-modelopt, which is not part of the CPU stack; the
    weights still come from Bridge's `export_hf_weights`.)"""
    out = Path(out_dir)
    bridge = auto_bridge(model_cfg)
    rank0 = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
    if rank0:
        out.mkdir(parents=True, exist_ok=True)
        if model_cfg.hf_path is not None:
            bridge.hf_pretrained.save_artifacts(out)
        else:
            hf_config_for(model_cfg).save_pretrained(out)
            if uses_project_tokenizer(model_cfg.size):
                load_tokenizer(model_cfg).hf.save_pretrained(out)
    stream = bridge.export_hf_weights(list(model_chunks), cpu=True, show_progress=False)
    if rank0:
        write_sharded(stream, out, max_shard_bytes)
    else:
        for _ in stream:  # every rank takes part in the gathers
            pass
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return out
