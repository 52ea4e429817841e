"""A static KV cache that plugs into megatron-core attention as its core-attention module.

Why not megatron-core's own inference contexts (0.19.2):
- The static context keeps keys un-rotated and re-applies RoPE to the whole cache at every
  decode step, and its local attention is an unfused baddbmm/softmax (~3x SDPA on CPU).
- The dynamic context needs flash-attn kernels and computes 1-D positions itself, so it cannot
  carry Qwen2.5-VL's 3-D M-RoPE positions.
- Megatron-Bridge's `Qwen25VLModel.forward` does not pass an inference context to its
  language model at all.

Instead, for the duration of a generation call, `attach_kv_cache` swaps every decoder
layer's `self_attention.core_attention` (a parameter-free module) for `CachedCoreAttention`.
Megatron's `Attention.forward` still computes Q/K/V and applies M-RoPE to the NEW tokens
only; the cached attention appends the rotated keys and the values to per-layer buffers and
runs `scaled_dot_product_attention` over the cache (FlashAttention kernels on CUDA, the
fused CPU kernel otherwise). The original modules come back when the context exits.

Cache layout: the padded prompt occupies columns [0, S) (left or right padding, given by the
batch's attention mask); decode step t writes column S + t for every row. Padding columns are
excluded by a key mask. A right-padded prefill needs only the causal mask (real tokens never
attend to the padding after them), so it takes SDPA's mask-free causal kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from megatron.core.transformer.module import MegatronModule


class KVCache:
    """Per-layer key/value buffers [B, groups, max_len, head_dim] and the key mask [B, max_len]."""

    def __init__(self, prompt_mask_BS: torch.Tensor, max_len: int, device: torch.device) -> None:
        batch, width = prompt_mask_BS.shape
        if max_len < width:
            raise ValueError(f"KV cache max_len={max_len} is shorter than the prompt ({width})")
        self.batch_size = batch
        self.prompt_width = width
        self.max_len = max_len
        self.length = 0
        self.num_new = 0
        self.key_mask_BL = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.key_mask_BL[:, :width] = prompt_mask_BS.to(device)
        self.prefill_mask_B1SS: torch.Tensor | None = None
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def begin_prefill(self) -> None:
        """The next forward writes the padded prompt into columns [0, S)."""
        assert self.length == 0, "prefill must be the first forward of a cache"
        width = self.prompt_width
        keys_BS = self.key_mask_BL[:, :width]
        if not bool((keys_BS.cummin(dim=1).values == keys_BS).all()):
            # Some row has padding before a real token: causal AND key mask (True = attend).
            # A padding query keeps its own key so that no row is empty: an all-masked row
            # gives NaN, which would leak through the cached values of later layers.
            causal_SS = torch.ones(width, width, dtype=torch.bool, device=keys_BS.device).tril()
            diagonal_SS = torch.eye(width, dtype=torch.bool, device=keys_BS.device)
            self.prefill_mask_B1SS = ((causal_SS & keys_BS[:, None, :]) | diagonal_SS)[:, None]
        self.num_new = width

    def begin_decode(self) -> None:
        """The next forward writes one token per row into the next column."""
        if self.length + 1 > self.max_len:
            raise ValueError(f"KV cache full at {self.max_len} columns; raise its max_len")
        self.key_mask_BL[:, self.length] = True
        self.num_new = 1

    def end_forward(self) -> None:
        self.length += self.num_new
        self.num_new = 0
        self.prefill_mask_B1SS = None

    def keep_rows(self, rows_R: torch.Tensor) -> None:
        """Drop finished rows: keep only `rows_R` (indices into the current batch)."""
        rows_R = rows_R.to(self.key_mask_BL.device)
        self.key_mask_BL = self.key_mask_BL[rows_R]
        self.batch_size = int(rows_R.numel())
        for layer, (keys, values) in self.layers.items():
            self.layers[layer] = (keys[rows_R], values[rows_R])

    def buffers(self, layer: int, like_BGSD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer not in self.layers:
            batch, groups, _, dim = like_BGSD.shape
            shape = (batch, groups, self.max_len, dim)
            self.layers[layer] = (
                torch.empty(shape, dtype=like_BGSD.dtype, device=like_BGSD.device),
                torch.empty(shape, dtype=like_BGSD.dtype, device=like_BGSD.device),
            )
        return self.layers[layer]


class CachedCoreAttention(torch.nn.Module):
    """Core attention over a `KVCache`, with megatron-core's core-attention call signature:
    query [sq, b, heads, d], key/value [sq, b, groups, d] -> context [sq, b, heads * d]."""

    def __init__(self, cache: KVCache, layer: int, softmax_scale: float) -> None:
        super().__init__()
        self.cache = cache
        self.layer = layer
        self.softmax_scale = softmax_scale

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        attn_mask_type=None,
        attention_bias=None,
        packed_seq_params=None,
    ) -> torch.Tensor:
        assert attention_bias is None and packed_seq_params is None
        cache = self.cache
        num_new, batch, heads, dim = query.shape
        groups = key.shape[2]
        start, end = cache.length, cache.length + num_new
        assert num_new == cache.num_new, "forward without begin_prefill/begin_decode"
        key_BGSD = key.permute(1, 2, 0, 3)
        keys, values = cache.buffers(self.layer, key_BGSD)
        keys[:, :, start:end] = key_BGSD
        values[:, :, start:end] = value.permute(1, 2, 0, 3)
        if start == 0:
            # Prefill: causal (and, with left padding, key-padding) attention over the prompt.
            q_BHSD = query.permute(1, 2, 0, 3)
            k_BHSD = keys[:, :, :end].repeat_interleave(heads // groups, dim=1)
            v_BHSD = values[:, :, :end].repeat_interleave(heads // groups, dim=1)
            mask = cache.prefill_mask_B1SS
            out_BHSD = F.scaled_dot_product_attention(
                q_BHSD,
                k_BHSD,
                v_BHSD,
                attn_mask=mask,
                is_causal=mask is None,
                scale=self.softmax_scale,
            )
            return out_BHSD.permute(2, 0, 1, 3).reshape(num_new, batch, heads * dim)
        # Decode: the heads of one KV group attend as `heads // groups` query rows of that
        # group, so grouped-query attention needs no copy of the cache.
        assert num_new == 1
        q_BGRD = query[0].view(batch, groups, heads // groups, dim)
        mask_B11L = cache.key_mask_BL[:, None, None, :end]
        out_BGRD = F.scaled_dot_product_attention(
            q_BGRD,
            keys[:, :, :end],
            values[:, :, :end],
            attn_mask=mask_B11L,
            scale=self.softmax_scale,
        )
        return out_BGRD.reshape(1, batch, heads * dim)


def _softmax_scale(config) -> float:
    if config.softmax_scale is not None:
        return float(config.softmax_scale)
    return config.kv_channels**-0.5


def _check_supported(config) -> None:
    unsupported = {
        "sequence_parallel": config.sequence_parallel,
        "context_parallel_size > 1": config.context_parallel_size > 1,
        "window_size": config.window_size is not None,
        "softmax_type != vanilla": config.softmax_type != "vanilla",
        "multi_latent_attention": config.multi_latent_attention,
        "flash_decode": config.flash_decode,
    }
    bad = [name for name, on in unsupported.items() if on]
    if bad:
        raise ValueError(
            f"KV-cached generation does not support {bad} in the language-model config; "
            "turn them off for the generation model (sequence parallelism: build the rollout "
            "model with sequence_parallel=False)"
        )


@contextlib.contextmanager
def attach_kv_cache(language_model: MegatronModule, cache: KVCache) -> Iterator[None]:
    """Route every local decoder layer's core attention through `cache` inside the block."""
    _check_supported(language_model.config)
    scale = _softmax_scale(language_model.config)
    swapped = []
    for index, layer in enumerate(language_model.decoder.layers):
        attention = layer.self_attention
        swapped.append((attention, attention.core_attention))
        attention.core_attention = CachedCoreAttention(cache, index, scale)
    try:
        yield
    finally:
        for attention, original in swapped:
            attention.core_attention = original
