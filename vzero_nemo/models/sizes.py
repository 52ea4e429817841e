"""Named Qwen2.5-VL sizes: the published dimensions of 7B / 32B / 72B and our CPU `tiny`.

Pure Python (no torch, no Megatron), so configs and recipes can read the dimensions cheaply.
The published values are those of the `Qwen/Qwen2.5-VL-{7B,32B,72B}-Instruct` `config.json`
files; `provider.provider_for` turns them into a Megatron-Bridge provider and
`hf_convert.hf_config_for` into a transformers `Qwen2_5_VLConfig`. When a checkpoint is
imported, `hf_convert.check_hf_config` verifies that its config matches the named size.

`tiny` keeps every architectural feature of Qwen2.5-VL (GQA, QKV bias, SwiGLU, RMSNorm,
M-RoPE, windowed + full-attention vision blocks, 2x2 patch merger) at a size that trains on
two CPU cores. Its vision patch is 8 px, so a merged 2x2 patch group covers 16 px: a 48x48
image becomes a 3x3 grid of 9 image tokens, one per 16-px cell of the CLEVR grid scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; set model.size to one of {list(SIZES)}")
    return SIZES[size]


def padded_vocab_size(num_tokens: int, multiple: int = 128) -> int:
    """Embedding rows for a tokenizer of `num_tokens`: rounded up to `multiple` (as Qwen's
    152064 rows hold 151665 tokens). Independent of the tensor-parallel size, so a checkpoint
    has the same shape under any TP that divides 128."""
    return -(-num_tokens // multiple) * multiple


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
