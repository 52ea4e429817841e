"""Qwen2.5-VL dimensions: named sizes (7B / 32B / 72B and our CPU `tiny`) or a checkpoint's own.

Pure Python (no torch, no Megatron), so configs and recipes can read the dimensions cheaply.

    dims = model_dims(cfg.model)                 # named size, or model.size=auto
    check_parallel(dims, cfg.parallel, cfg.model) # TP / PP fit the heads, FFN, vocab, layers

The named values are those of the `Qwen/Qwen2.5-VL-{7B,32B,72B}-Instruct` `config.json` files
(tested against copies of them); `model.size=auto` reads `model.hf_path/config.json` instead
(`dims_from_hf_config`), so any Qwen2.5-VL works: 3B, the published sizes, depth-reduced test
models. Either way the dimensions are checked for internal consistency (`check_dims`: head
dims, GQA grouping, M-RoPE sections summing to head_dim / 2, the vision tower's windows and
full-attention blocks). `provider.provider_for` turns them into a Megatron-Bridge provider and
`hf_convert.hf_config_for` into a transformers `Qwen2_5_VLConfig`; when a checkpoint is
imported, `hf_convert.check_hf_config` verifies that its config matches.

`tiny` keeps every architectural feature of Qwen2.5-VL (GQA, QKV bias, SwiGLU, RMSNorm,
M-RoPE, windowed + full-attention vision blocks, 2x2 patch merger) at a size that trains on
two CPU cores. Its vision patch is 8 px, so a merged 2x2 patch group covers 16 px: a 48x48
image becomes a 3x3 grid of 9 image tokens, one per 16-px cell of the CLEVR grid scenes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vzero_nemo.config import ModelConfig, ParallelConfig

AUTO = "auto"
"""`model.size` value that takes the dimensions from `model.hf_path/config.json`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VisionDims:
    depth: int
    """Vision transformer blocks."""
    hidden_size: int
    intermediate_size: int
    """SwiGLU width of a vision block."""
    num_heads: int
    patch_size: int
    """Square patch side in pixels."""
    temporal_patch_size: int = 2
    """Frames per patch; a still image is repeated to fill it (Qwen2.5-VL: 2)."""
    spatial_merge_size: int = 2
    """Side of the patch group merged into one language token (Qwen2.5-VL: 2)."""
    window_size: int = 112
    """Window-attention side in pixels (Qwen2.5-VL: 112 = 4 merged groups of 28 px)."""
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    """Blocks with full (not windowed) attention."""
    tokens_per_second: int = 2
    """Temporal position step for video (unused for images, kept for config parity)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Qwen25VLDims:
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    """Key/value heads (GQA)."""
    vocab_size: int | None
    """Embedding rows. None: the project tokenizer's size, rounded up to a multiple of 128."""
    vision: VisionDims
    mrope_section: tuple[int, int, int] = (16, 24, 24)
    """Rotary frequency pairs given to the temporal / height / width position (sums to
    head_dim / 2)."""
    rotary_base: float = 1_000_000.0
    layernorm_epsilon: float = 1e-6
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 128_000
    hf_model_id: str | None = None
    """The published checkpoint these dimensions come from."""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


_PUBLISHED_VISION = dict(
    depth=32,
    hidden_size=1280,
    num_heads=16,
    patch_size=14,
    window_size=112,
    fullatt_block_indexes=(7, 15, 23, 31),
)

SIZES: dict[str, Qwen25VLDims] = {
    "tiny": Qwen25VLDims(
        num_layers=4,
        hidden_size=128,
        ffn_hidden_size=512,
        num_attention_heads=4,
        num_query_groups=2,
        vocab_size=None,
        mrope_section=(4, 6, 6),
        rotary_base=10_000.0,
        max_position_embeddings=2048,
        vision=VisionDims(
            depth=2,
            hidden_size=64,
            intermediate_size=160,
            num_heads=4,
            patch_size=8,
            window_size=32,
            fullatt_block_indexes=(1,),
        ),
    ),
    "7b": Qwen25VLDims(
        num_layers=28,
        hidden_size=3584,
        ffn_hidden_size=18944,
        num_attention_heads=28,
        num_query_groups=4,
        vocab_size=152064,
        vision=VisionDims(intermediate_size=3420, **_PUBLISHED_VISION),
        hf_model_id="Qwen/Qwen2.5-VL-7B-Instruct",
    ),
    "32b": Qwen25VLDims(
        num_layers=64,
        hidden_size=5120,
        ffn_hidden_size=27648,
        num_attention_heads=40,
        num_query_groups=8,
        vocab_size=152064,
        vision=VisionDims(intermediate_size=3456, **_PUBLISHED_VISION),
        hf_model_id="Qwen/Qwen2.5-VL-32B-Instruct",
    ),
    "72b": Qwen25VLDims(
        num_layers=80,
        hidden_size=8192,
        ffn_hidden_size=29568,
        num_attention_heads=64,
        num_query_groups=8,
        vocab_size=152064,
        vision=VisionDims(intermediate_size=3456, **_PUBLISHED_VISION),
        hf_model_id="Qwen/Qwen2.5-VL-72B-Instruct",
    ),
}


PUBLISHED: dict[str, Qwen25VLDims] = {
    "3b": Qwen25VLDims(
        num_layers=36,
        hidden_size=2048,
        ffn_hidden_size=11008,
        num_attention_heads=16,
        num_query_groups=2,
        vocab_size=151936,
        tie_word_embeddings=True,
        vision=VisionDims(intermediate_size=3420, **_PUBLISHED_VISION),
        hf_model_id="Qwen/Qwen2.5-VL-3B-Instruct",
    ),
    **{name: dims for name, dims in SIZES.items() if name != "tiny"},
}
"""Every published Qwen2.5-VL (3B has no `model.size` name: its checkpoints load with `auto`)."""
# The same architecture at other sizes, on the project's tokenizer (no checkpoint needed):
# half and twice the tiny language model's width and depth (the model-size study, same
# vision tower), and the 7B widths at one language layer and one vision block (memory
# cross-checks of the planner on CPU).
SIZES["tiny_s"] = replace(
    SIZES["tiny"], num_layers=2, hidden_size=64, ffn_hidden_size=256, num_attention_heads=2,
    num_query_groups=1,
)  # fmt: skip
SIZES["tiny_l"] = replace(
    SIZES["tiny"], num_layers=8, hidden_size=256, ffn_hidden_size=1024, num_attention_heads=8,
    num_query_groups=4,
)  # fmt: skip
SIZES["7b_1layer"] = replace(
    SIZES["7b"], num_layers=1, vocab_size=None, hf_model_id=None,
    vision=replace(SIZES["7b"].vision, depth=1, fullatt_block_indexes=(0,)),
)  # fmt: skip


def uses_project_tokenizer(size: str) -> bool:
    """Sizes embedding the project's own tokenizer (`vocab_size` None): built without a
    checkpoint, their special-token ids are the tokenizer's."""
    return size in SIZES and SIZES[size].vocab_size is None


def dims_for(size: str) -> Qwen25VLDims:
    """The dimensions of a named size; ValueError names the valid sizes."""
    if size == AUTO:
        raise ValueError(
            "model.size='auto' has no fixed dimensions; they come from model.hf_path/config.json "
            "(use sizes.model_dims(model_cfg))"
        )
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; set model.size to one of {[*SIZES, AUTO]}")
    return SIZES[size]


def model_dims(model_cfg: ModelConfig) -> Qwen25VLDims:
    """The dimensions of `model_cfg`: its named size, or (`auto`) its checkpoint's config.json,
    checked for internal consistency."""
    if model_cfg.size != AUTO:
        return dims_for(model_cfg.size)
    if model_cfg.hf_path is None:
        raise ValueError(
            "model.size='auto' takes the dimensions from model.hf_path/config.json; set "
            "model.hf_path to a local Hugging Face Qwen2.5-VL directory"
        )
    path = Path(model_cfg.hf_path) / "config.json"
    if not path.is_file():
        raise ValueError(
            f"model.size='auto' reads {str(path)!r}, which does not exist; point model.hf_path "
            "at a local Hugging Face Qwen2.5-VL directory (nothing is downloaded)"
        )
    return _dims_from_file(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _dims_from_file(path: str, mtime_ns: int) -> Qwen25VLDims:
    del mtime_ns  # part of the cache key only: an edited file is read again
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    return dims_from_hf_config(config, source=path)


def padded_vocab_size(num_tokens: int, multiple: int = 128) -> int:
    """Embedding rows for a tokenizer of `num_tokens`: rounded up to `multiple` (as Qwen's
    152064 rows hold 151665 tokens). Independent of the tensor-parallel size, so a checkpoint
    has the same shape under any TP that divides 128."""
    return -(-num_tokens // multiple) * multiple


def describe_dims(dims: Qwen25VLDims) -> str:
    """One line: the dimensions that decide memory and parallel layouts."""
    v = dims.vision
    vocab = dims.vocab_size if dims.vocab_size is not None else "tokenizer"
    total = num_parameters(dims, dims.vocab_size)["total"] if dims.vocab_size else None
    return (
        f"{dims.num_layers} layers, hidden {dims.hidden_size}, {dims.num_attention_heads} heads "
        f"/ {dims.num_query_groups} KV heads (head dim {dims.head_dim}), FFN "
        f"{dims.ffn_hidden_size}, vocab {vocab}, M-RoPE {list(dims.mrope_section)}; vision "
        f"{v.depth} blocks (full attention {list(v.fullatt_block_indexes)}), {v.patch_size}-px "
        f"patches, {v.patch_size * v.spatial_merge_size}-px tokens"
        + (f"; {total / 1e9:.2f}B parameters" if total else "")
    )


def num_parameters(dims: Qwen25VLDims, vocab_size: int) -> dict[str, int]:
    """Parameter counts {"vision", "language", "total"} of a size (no weights allocated)."""
    h, f, d = dims.hidden_size, dims.ffn_hidden_size, dims.head_dim
    qkv_out = h + 2 * dims.num_query_groups * d
    layer = 2 * h + h * qkv_out + qkv_out + h * h + 2 * h * f + f * h
    embeddings = vocab_size * h * (1 if dims.tie_word_embeddings else 2)
    language = embeddings + h + dims.num_layers * layer
    v = dims.vision
    hv, iv, merged = v.hidden_size, v.intermediate_size, v.hidden_size * v.spatial_merge_size**2
    block = 2 * hv + (hv * 3 * hv + 3 * hv) + (hv * hv + hv) + 2 * (hv * iv + iv) + (iv * hv + hv)
    patch_embed = 3 * v.temporal_patch_size * v.patch_size**2 * hv
    merger = hv + (merged * merged + merged) + (merged * h + h)
    vision = patch_embed + v.depth * block + merger
    return {"vision": vision, "language": language, "total": vision + language}


# ---------------------------------------------------------------- a checkpoint's own config


def _require_key(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section or section[key] is None:
        raise ValueError(f"{where} has no {key!r}; is it a Qwen2.5-VL config.json?")
    return section[key]


def _rope_fields(config: Mapping[str, Any], text: Mapping[str, Any]) -> tuple[list, float]:
    """(mrope_section, rope_theta) of transformers 4.x (`rope_scaling` + `rope_theta`) or 5.x
    (`rope_parameters`) configs."""
    rope: Mapping[str, Any] = {}
    for section in (text, config):
        rope = section.get("rope_parameters") or section.get("rope_scaling") or {}
        if rope:
            break
    mrope = rope.get("mrope_section")
    theta = rope.get("rope_theta", text.get("rope_theta", config.get("rope_theta")))
    return list(mrope or []), float(theta if theta is not None else 0.0)


def dims_from_hf_config(config: Mapping[str, Any], source: str = "config.json") -> Qwen25VLDims:
    """The dimensions in a Qwen2.5-VL `config.json` (the published flat layout of transformers
    4.x, or 5.x's `text_config` / `vision_config` layout), checked with `check_dims`."""
    model_type = config.get("model_type", "qwen2_5_vl")
    if model_type != "qwen2_5_vl":
        raise ValueError(
            f"{source} has model_type={model_type!r}; model.size='auto' reads Qwen2.5-VL "
            "checkpoints (model_type 'qwen2_5_vl') only"
        )
    text = config.get("text_config") or config
    vision = _require_key(config, "vision_config", source)
    where_v = f"{source} vision_config"
    mrope, theta = _rope_fields(config, text)
    if len(mrope) != 3:
        raise ValueError(
            f"{source} has mrope_section={mrope}; Qwen2.5-VL needs three M-RoPE sections "
            "(temporal, height, width) in rope_scaling / rope_parameters"
        )
    tie = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    hidden = int(_require_key(text, "hidden_size", source))
    out_hidden = int(vision.get("out_hidden_size", hidden))
    if out_hidden != hidden:
        raise ValueError(
            f"{source}: vision_config.out_hidden_size={out_hidden} differs from the language "
            f"hidden_size={hidden}; the patch merger must project onto the language width"
        )
    dims = Qwen25VLDims(
        num_layers=int(_require_key(text, "num_hidden_layers", source)),
        hidden_size=hidden,
        ffn_hidden_size=int(_require_key(text, "intermediate_size", source)),
        num_attention_heads=int(_require_key(text, "num_attention_heads", source)),
        num_query_groups=int(_require_key(text, "num_key_value_heads", source)),
        vocab_size=int(_require_key(text, "vocab_size", source)),
        mrope_section=(int(mrope[0]), int(mrope[1]), int(mrope[2])),
        rotary_base=theta,
        layernorm_epsilon=float(text.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(tie),
        max_position_embeddings=int(text.get("max_position_embeddings", 128_000)),
        hf_model_id=config.get("_name_or_path") or None,
        vision=VisionDims(
            depth=int(_require_key(vision, "depth", where_v)),
            hidden_size=int(_require_key(vision, "hidden_size", where_v)),
            intermediate_size=int(_require_key(vision, "intermediate_size", where_v)),
            num_heads=int(_require_key(vision, "num_heads", where_v)),
            patch_size=int(_require_key(vision, "patch_size", where_v)),
            temporal_patch_size=int(vision.get("temporal_patch_size", 2)),
            spatial_merge_size=int(vision.get("spatial_merge_size", 2)),
            window_size=int(vision.get("window_size", 112)),
            fullatt_block_indexes=tuple(int(i) for i in vision.get("fullatt_block_indexes", ())),
            tokens_per_second=int(vision.get("tokens_per_second", 2)),
        ),
    )
    check_dims(dims, source)
    return dims


def check_dims(dims: Qwen25VLDims, source: str) -> None:
    """ValueError naming every internal inconsistency of `dims` (read from `source`)."""
    errors = []
    heads, groups, hidden = dims.num_attention_heads, dims.num_query_groups, dims.hidden_size
    if heads < 1 or hidden % heads:
        errors.append(f"hidden_size={hidden} is not divisible by num_attention_heads={heads}")
    elif dims.head_dim % 2:
        errors.append(f"head_dim={dims.head_dim} (hidden_size / heads) must be even for RoPE")
    elif sum(dims.mrope_section) != dims.head_dim // 2:
        errors.append(
            f"mrope_section={list(dims.mrope_section)} sums to {sum(dims.mrope_section)}, not "
            f"head_dim / 2 = {dims.head_dim // 2}"
        )
    if groups < 1 or heads % groups:
        errors.append(
            f"num_attention_heads={heads} is not a multiple of num_key_value_heads={groups}"
        )
    v = dims.vision
    if v.num_heads < 1 or v.hidden_size % v.num_heads or (v.hidden_size // v.num_heads) % 4:
        errors.append(
            f"vision hidden_size={v.hidden_size} / num_heads={v.num_heads} must be a head dim "
            "divisible by 4 (2-D rotary embedding)"
        )
    merged = v.patch_size * v.spatial_merge_size
    if v.window_size % merged:
        errors.append(
            f"vision window_size={v.window_size} px is not a multiple of a merged token "
            f"({v.patch_size} px x {v.spatial_merge_size} = {merged} px)"
        )
    blocks = v.fullatt_block_indexes
    if list(blocks) != sorted(set(blocks)) or any(not 0 <= b < v.depth for b in blocks):
        errors.append(
            f"vision fullatt_block_indexes={list(blocks)} must be distinct, sorted block "
            f"indexes below depth={v.depth}"
        )
    if errors:
        raise ValueError(f"inconsistent Qwen2.5-VL dimensions in {source}: " + "; ".join(errors))


def _divisors_of_all(*numbers: int) -> list[int]:
    return [d for d in range(1, min(numbers) + 1) if all(n % d == 0 for n in numbers)]


def check_parallel(
    dims: Qwen25VLDims, parallel_cfg: ParallelConfig, model_cfg: ModelConfig
) -> None:
    """ValueError unless TP divides the heads, key/value heads, FFN width and vocabulary and
    PP (x VPP) divides the language layers; the message names the setting to change."""
    tp = parallel_cfg.tensor_model_parallel_size
    what = f"model.size={model_cfg.size!r}" + (
        f" (model.hf_path={model_cfg.hf_path!r})" if model_cfg.size == AUTO else ""
    )
    tp_sizes = {
        "attention heads": dims.num_attention_heads,
        "key/value heads": dims.num_query_groups,
        "FFN width": dims.ffn_hidden_size,
    }
    if dims.vocab_size is not None:
        tp_sizes["vocabulary rows"] = dims.vocab_size
    bad = {name: n for name, n in tp_sizes.items() if n % tp}
    if bad:
        listed = ", ".join(f"{n} {name}" for name, n in bad.items())
        valid = _divisors_of_all(*tp_sizes.values())
        raise ValueError(
            f"parallel.tensor_model_parallel_size={tp} does not divide the {listed} of {what}; "
            f"set parallel.tensor_model_parallel_size to one of {valid}"
        )
    pp = parallel_cfg.pipeline_model_parallel_size
    chunks = pp * (parallel_cfg.virtual_pipeline_model_parallel_size or 1)
    if dims.num_layers % chunks:
        raise ValueError(
            f"parallel.pipeline_model_parallel_size={pp} x virtual "
            f"{parallel_cfg.virtual_pipeline_model_parallel_size} = {chunks} pipeline chunks do "
            f"not divide the {dims.num_layers} language layers of {what}; use a pipeline layout "
            f"whose chunk count divides {dims.num_layers}"
        )
