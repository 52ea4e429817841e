"""Hugging Face Qwen2.5-VL <-> Megatron weights through Megatron-Bridge's AutoBridge.

    from vzero_nemo.models import hf_convert
    model = build_policy(cfg.model, cfg.parallel)            # random init
    hf_convert.import_hf_weights([model], cfg.model)          # from cfg.model.hf_path
    hf_convert.save_hf_checkpoint([model], cfg.model, "outputs/hf_export")

Import reads a LOCAL checkpoint directory only (`model.hf_path`; nothing is downloaded) and
first checks that its `config.json` matches the named size (`check_hf_config`): the model is
built from our provider, not from the one Bridge derives from the config, because Bridge's
Qwen2.5-VL provider keeps its default M-RoPE sections and ignores the checkpoint's. Export
works for every size, `tiny` included (its HF config comes from `hf_config_for`); the result
loads with `Qwen2_5_VLForConditionalGeneration.from_pretrained`. Both directions run at any
TP / PP (Bridge shards and gathers) and must be called on every rank.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from vzero_nemo.parallel import cpu_compat

cpu_compat.install()  # before Megatron-Bridge is imported (no-op with CUDA)

from megatron.bridge import AutoBridge  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import Qwen2_5_VLConfig  # noqa: E402

from vzero_nemo.config import ModelConfig  # noqa: E402
from vzero_nemo.models.provider import model_vocab, vision_config_for  # noqa: E402
from vzero_nemo.models.sizes import dims_for, uses_project_tokenizer  # noqa: E402
from vzero_nemo.models.tokenizer import (  # noqa: E402
    VLTokenizer,
    load_tokenizer,
    special_token_ids,
)


def hf_config_for(model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None) -> Qwen2_5_VLConfig:
    """The transformers config of `model_cfg.size` (ids and vocabulary as `model_vocab`)."""
    dims = dims_for(model_cfg.size)
    ids, vocab_size = model_vocab(model_cfg, tokenizer)
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


def _summary(config: Qwen2_5_VLConfig) -> dict[str, object]:
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


def _raise_on_diffs(have: dict, want: dict, model_cfg: ModelConfig) -> None:
    diffs = [f"{k}: checkpoint {have[k]!r} != {want[k]!r}" for k in want if have[k] != want[k]]
    if diffs:
        raise ValueError(
            f"checkpoint config does not match model.size={model_cfg.size!r}: "
            + "; ".join(diffs)
            + ". Set model.size to the checkpoint's size."
        )


def check_hf_config(
    config: Qwen2_5_VLConfig, model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None
) -> None:
    """ValueError listing every field where a checkpoint's config differs from the named size:
    dimensions first, then the special-token ids (which may load the checkpoint's tokenizer)."""
    published = dataclasses.replace(model_cfg, hf_path=None, tokenizer_path=None)
    want = _summary(
        hf_config_for(published, tokenizer if uses_project_tokenizer(model_cfg.size) else None)
    )
    _raise_on_diffs(_summary(config), want, model_cfg)
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
    weights as safetensors shards of at most `max_shard_bytes`, streamed so rank 0 holds one
    shard at a time. (Bridge's own `save_hf_pretrained` imports nvidia-modelopt, which is not
    part of the CPU stack; the weights still come from Bridge's `export_hf_weights`.)"""
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
        _write_safetensors(stream, out, max_shard_bytes)
    else:
        for _ in stream:  # every rank takes part in the gathers
            pass
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return out


def _write_safetensors(
    stream: Iterator[tuple[str, torch.Tensor]], out: Path, max_shard_bytes: int
) -> None:
    shard: dict[str, torch.Tensor] = {}
    shard_bytes = total_bytes = 0
    files: list[Path] = []
    shard_of: dict[str, int] = {}

    def flush() -> None:
        files.append(out / f"model-part-{len(files):05d}.safetensors.tmp")
        save_file(shard, files[-1], metadata={"format": "pt"})
        shard.clear()

    for name, tensor in stream:
        nbytes = tensor.numel() * tensor.element_size()
        if shard and shard_bytes + nbytes > max_shard_bytes:
            flush()
            shard_bytes = 0
        shard[name] = tensor.contiguous()
        shard_of[name] = len(files)
        shard_bytes += nbytes
        total_bytes += nbytes
    if shard:
        flush()
    if len(files) == 1:
        files[0].rename(out / "model.safetensors")
        return
    names = [f"model-{i + 1:05d}-of-{len(files):05d}.safetensors" for i in range(len(files))]
    for tmp, name in zip(files, names):
        tmp.rename(out / name)
    index = {
        "metadata": {"total_size": total_bytes},
        "weight_map": {k: names[i] for k, i in sorted(shard_of.items())},
    }
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
