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

Packed prefill: the prompt tokens go through the language model as ONE packed sequence
[N, 1, H] without padding, each distinct prompt once and the prompts' common prefix once
(`prefill.py`), so the linear layers and MLPs, which hold nearly all the prefill FLOPs, do no
work on padding or repeats. Only the attention scatters the packed queries/keys/values into
a right-aligned padded work layout and runs causal SDPA there; batch row i's cache columns
[0, len_i) then hold its prompt, whatever the batch's padding side.

Decode: step t writes column S + t of every row; a key mask excludes columns
[len_i, S) (padding, kept at zero so no NaN can enter the softmax). A block of n given tokens
per row (scoring responses, `vzero_nemo.generation.score`) is one forward writing columns
[S, S + n), causal within the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from megatron.core.transformer.module import MegatronModule

from vzero_nemo.generation.prefill import PrefillPlan


class KVCache:
    """Per-layer key/value buffers [B, groups, max_len, head_dim] and the key mask [B, max_len].

    With `share_prompts` (rows repeating a prompt: the observer's votes), the prompts' keys
    and values are kept once per DISTINCT prompt ([U, groups, W, head_dim], `prompt_layers`)
    and the per-row buffers hold only the generated tokens ([B, groups, max_len - W, d]);
    a decode step attends to both with one softmax (see `_decode_shared`), reading each
    prompt's keys once for all its rows instead of once per row."""

    def __init__(
        self, plan: PrefillPlan, max_len: int, device: torch.device, share_prompts: bool = False
    ) -> None:
        lengths_B = plan.lengths_B
        width = int(lengths_B.max())
        if max_len < width:
            raise ValueError(f"KV cache max_len={max_len} is shorter than the prompt ({width})")
        self.plan = plan
        self.batch_size = int(lengths_B.numel())
        self.prompt_width = width
        self.max_len = max_len
        self.length = 0
        """Columns filled: the prompt width after the prefill, + 1 per decode step."""
        self.in_prefill = False
        self.num_new = 0
        self.work_rows_N = plan.work_rows_N.to(device)
        self.work_columns_N = plan.work_columns_N.to(device)
        self.unique_of_row_B = plan.unique_of_row_B.to(device)
        self.key_mask_BL = torch.zeros(self.batch_size, max_len, dtype=torch.bool, device=device)
        self.key_mask_BL[:, :width] = (
            torch.arange(width, device=device) < lengths_B.to(device)[:, None]
        )
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.share_prompts = share_prompts
        self.prompt_layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if share_prompts:
            self.prompt_mask_UW = (
                torch.arange(width, device=device) < plan.lengths_U.to(device)[:, None]
            )
            # Row b's slot in a [U, M] grid of the rows of each distinct prompt (M = most rows
            # of one prompt), so the rows of a prompt attend to its keys in one matmul.
            counts = torch.bincount(plan.unique_of_row_B, minlength=plan.num_unique)
            self.rows_per_prompt = int(counts.max())
            rank_B = torch.zeros_like(plan.unique_of_row_B)
            seen = [0] * plan.num_unique
            for row, u in enumerate(plan.unique_of_row_B.tolist()):
                rank_B[row], seen[u] = seen[u], seen[u] + 1
            self.slot_B = (plan.unique_of_row_B * self.rows_per_prompt + rank_B).to(device)
            self._update_grouped()
            # Prompts shorter than the widest: their padding columns are masked per prompt.
            self.prompts_padded = bool((plan.lengths_U < width).any())

    def _update_grouped(self) -> None:
        """Whether the rows of each prompt are consecutive and every prompt has the same
        number of rows (the observer's votes before any finishes): then the [U, M] grid of
        `_decode_shared` is the batch itself, a view without scatter or gather."""
        grid = self.plan.num_unique * self.rows_per_prompt
        self.grouped = self.batch_size == grid and bool(
            torch.equal(self.slot_B.cpu(), torch.arange(grid))
        )

    @property
    def num_prompt_tokens(self) -> int:
        return self.plan.num_tokens

    def begin_prefill(self) -> None:
        """The next forward is the packed prompt [N, 1, H] of `plan` (see prefill.py)."""
        assert self.length == 0 and not self.in_prefill, "a cache takes one prefill, first"
        self.in_prefill = True
        self.num_new = self.num_prompt_tokens

    def begin_decode(self, num_new: int = 1) -> None:
        """The next forward writes `num_new` tokens per row into columns `length` on (more
        than one: a block of given tokens, e.g. responses to score, causal within it)."""
        assert self.length >= self.prompt_width, "decode before prefill"
        if self.length + num_new > self.max_len:
            raise ValueError(f"KV cache full at {self.max_len} columns; raise its max_len")
        self.key_mask_BL[:, self.length : self.length + num_new] = True
        self.num_new = num_new

    def end_forward(self) -> None:
        self.length = self.prompt_width if self.in_prefill else self.length + self.num_new
        self.in_prefill = False
        self.num_new = 0

    def keep_rows(self, rows_R: torch.Tensor) -> None:
        """Drop finished rows: keep only `rows_R` (indices into the current batch)."""
        rows_R = rows_R.to(self.key_mask_BL.device)
        self.key_mask_BL = self.key_mask_BL[rows_R]
        self.batch_size = int(rows_R.numel())
        if self.share_prompts:
            self.unique_of_row_B = self.unique_of_row_B[rows_R]
            self.slot_B = self.slot_B[rows_R]
            self._update_grouped()
        for layer, (keys, values) in self.layers.items():
            self.layers[layer] = (keys[rows_R], values[rows_R])

    def buffers(
        self, layer: int, groups: int, dim: int, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer not in self.layers:
            # Zeros: padding columns are masked, and masked entries must still be finite.
            width = self.max_len - (self.prompt_width if self.share_prompts else 0)
            shape = (self.batch_size, groups, width, dim)
            self.layers[layer] = (
                torch.zeros(shape, dtype=like.dtype, device=like.device),
                torch.zeros(shape, dtype=like.dtype, device=like.device),
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
        num_new, _, heads, dim = query.shape
        groups = key.shape[2]
        assert num_new == cache.num_new, "forward without begin_prefill/begin_decode"
        keys, values = cache.buffers(self.layer, groups, dim, key)
        if cache.in_prefill:
            return self._prefill(query[:, 0], key[:, 0], value[:, 0], keys, values)
        if cache.share_prompts:
            assert num_new == 1, "blocks of tokens need share_prompts=False"
            return self._decode_shared(query[0], key[0], value[0], keys, values)
        if num_new > 1:
            return self._block(query, key, value, keys, values)
        # Decode, query [1, B, heads, d]: the heads of one KV group attend as `heads // groups`
        # query rows of that group, so grouped-query attention needs no copy of the cache.
        batch, end = query.shape[1], cache.length + 1
        keys[:, :, cache.length] = key[0]
        values[:, :, cache.length] = value[0]
        q_BGRD = query[0].view(batch, groups, heads // groups, dim)
        out_BGRD = F.scaled_dot_product_attention(
            q_BGRD,
            keys[:, :, :end],
            values[:, :, :end],
            attn_mask=cache.key_mask_BL[:, None, None, :end],
            scale=self.softmax_scale,
        )
        return out_BGRD.reshape(1, batch, heads * dim)

    def _decode_shared(self, q_BHD, k_BGD, v_BGD, keys, values) -> torch.Tensor:
        """One new token per row over the shared prompt keys + the row's own generated keys:
        softmax over [prompt | generated] scores, each prompt's keys read once for its rows.

        The rows of prompt u are laid side by side as [U, G, M * R, D] (M = most rows of one
        prompt, R = query heads per KV group; see `_to_grid`)."""
        cache = self.cache
        batch, heads, dim = q_BHD.shape
        groups = k_BGD.shape[1]
        reps = heads // groups
        t = cache.length - cache.prompt_width  # generated columns before this token
        keys[:, :, t] = k_BGD
        values[:, :, t] = v_BGD
        k_UGWD, v_UGWD = cache.prompt_layers[self.layer]
        num_unique, slots = k_UGWD.shape[0], cache.rows_per_prompt
        width = k_UGWD.shape[2]
        q_BGRD = q_BHD.view(batch, groups, reps, dim) * self.softmax_scale
        q_UGXD = self._to_grid(q_BGRD).transpose(1, 2).reshape(num_unique, groups, -1, dim)
        s_UGXW = torch.matmul(q_UGXD, k_UGWD.transpose(-1, -2))
        if cache.prompts_padded:
            s_UGXW.masked_fill_(~cache.prompt_mask_UW[:, None, None, :], -torch.inf)
        s_BGRW = self._from_grid(
            s_UGXW.view(num_unique, groups, slots, reps, width).transpose(1, 2)
        )
        s_BGRT = torch.matmul(q_BGRD, keys[:, :, : t + 1].transpose(-1, -2))
        p_BGRX = torch.softmax(torch.cat([s_BGRW, s_BGRT], dim=-1), dim=-1)
        out_BGRD = torch.matmul(p_BGRX[..., width:], values[:, :, : t + 1])
        p_UGXW = self._to_grid(p_BGRX[..., :width]).transpose(1, 2)
        o_UGXD = torch.matmul(p_UGXW.reshape(num_unique, groups, -1, width), v_UGWD)
        o_BGRD = self._from_grid(o_UGXD.view(num_unique, groups, slots, reps, dim).transpose(1, 2))
        return (out_BGRD + o_BGRD).reshape(1, batch, heads * dim)

    def _to_grid(self, x_BGRY: torch.Tensor) -> torch.Tensor:
        """Rows [B, G, R, Y] -> the [U, M, G, R, Y] grid of the rows of each prompt: a view of
        the batch when `cache.grouped`, else a zero-padded scatter into the rows' slots."""
        cache = self.cache
        grid = (cache.plan.num_unique, cache.rows_per_prompt, *x_BGRY.shape[1:])
        if cache.grouped:
            return x_BGRY.reshape(grid)
        padded = x_BGRY.new_zeros(grid[0] * grid[1], *grid[2:])
        padded[cache.slot_B] = x_BGRY
        return padded.view(grid)

    def _from_grid(self, x_UMGRY: torch.Tensor) -> torch.Tensor:
        """The [U, M, G, R, Y] grid -> rows [B, G, R, Y] (inverse of `_to_grid`)."""
        rows = x_UMGRY.reshape(-1, *x_UMGRY.shape[2:])
        return rows if self.cache.grouped else rows[self.cache.slot_B]

    def _block(self, query, key, value, keys, values) -> torch.Tensor:
        """n new tokens per row [n, B, heads, d]: each attends to its row's cache and to the
        block's tokens up to itself."""
        cache = self.cache
        num_new, batch, heads, dim = query.shape
        start, end = cache.length, cache.length + num_new
        keys[:, :, start:end] = key.permute(1, 2, 0, 3)
        values[:, :, start:end] = value.permute(1, 2, 0, 3)
        block_nn = torch.ones(num_new, num_new, dtype=torch.bool, device=query.device).tril()
        allowed_BnL = cache.key_mask_BL[:, None, :end].expand(batch, num_new, end).clone()
        allowed_BnL[:, :, start:] &= block_nn
        out_BHnD = F.scaled_dot_product_attention(
            query.permute(1, 2, 0, 3),
            keys[:, :, :end],
            values[:, :, :end],
            attn_mask=allowed_BnL[:, None],
            scale=self.softmax_scale,
            enable_gqa=heads != key.shape[2],
        )
        return out_BHnD.permute(2, 0, 1, 3).reshape(num_new, batch, heads * dim)

    def _prefill(self, q_NHD, k_NGD, v_NGD, keys, values) -> torch.Tensor:
        """Packed prompt tokens -> work layout -> causal SDPA -> packed; fill the cache."""
        cache, plan = self.cache, self.cache.plan
        rows_N, columns_N = cache.work_rows_N, cache.work_columns_N
        width, prefix, num_unique = cache.prompt_width, plan.prefix_len, plan.num_unique
        num_tokens, heads, dim = q_NHD.shape
        groups = k_NGD.shape[1]
        # Zeros: padding stays finite (a masked NaN would still poison the softmax).
        work_shape = (plan.num_work_rows, groups, width, dim)
        k_work = k_NGD.new_zeros(work_shape)
        v_work = v_NGD.new_zeros(work_shape)
        k_work[rows_N, :, columns_N] = k_NGD
        v_work[rows_N, :, columns_N] = v_NGD
        if prefix > 0:  # the prefix (work row U) is part of every distinct prompt
            k_work[:num_unique, :, :prefix] = k_work[num_unique, :, :prefix]
            v_work[:num_unique, :, :prefix] = v_work[num_unique, :, :prefix]
        q_work = q_NHD.new_zeros(plan.num_work_rows, heads, width, dim)
        q_work[rows_N, :, columns_N] = q_NHD
        # Every prompt is a prefix of its work row: causality alone keeps it off the padding.
        out_work = F.scaled_dot_product_attention(
            q_work,
            k_work,
            v_work,
            is_causal=True,
            scale=self.softmax_scale,
            enable_gqa=groups != heads,
        )
        if cache.share_prompts:  # the distinct prompts' own rows of the work layout
            cache.prompt_layers[self.layer] = (k_work[:num_unique], v_work[:num_unique])
        else:
            keys[:, :, :width] = k_work[cache.unique_of_row_B]
            values[:, :, :width] = v_work[cache.unique_of_row_B]
        return out_work[rows_N, :, columns_N].reshape(num_tokens, 1, heads * dim)


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
