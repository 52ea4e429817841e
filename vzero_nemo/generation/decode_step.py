"""One decode step of a pipeline stage's decoder layers with only the arithmetic left.

A decode step runs a handful of small matrix products per layer (one new token per row), so
on a CPU, and at small batch on any device, its time goes mostly to megatron-core's per-layer
orchestration: `TransformerLayer` / `Attention` / `MLP` / parallel-linear wrappers,
offloading and recompute contexts, NVTX ranges, autograd functions under `no_grad`. That
costs about 7 ms per step for the 4 layers of the tiny model on one core (0.7x HF's step).
`LeanDecoder` runs the same operations on the same parameters, in the same order, so its
hidden states are BIT-IDENTICAL to the megatron-core forward (tested at TP=1, TP=2 and PP=2):
- the embedding (`lm.embedding`, vocabulary-parallel under TP) and the M-RoPE frequencies
  (`lm.rotary_pos_emb`) are the model's own modules;
- each layer: input RMSNorm; QKV projection `x @ W.T + b`; the per-group split of the query
  heads, keys and values; rotary embedding of queries and keys (`t * cos + rotate_half(t) *
  sin`, cos/sin computed once per step instead of twice per layer); the layer's core
  attention (the KV cache's `CachedCoreAttention`); the output projection, all-reduced over
  TP; the residual add; pre-MLP RMSNorm; SwiGLU MLP (`silu(a) * b`, fc2 all-reduced); the
  residual add; the final RMSNorm on the last stage.

Any other architecture (Transformer Engine's fused layer-norm linears, QK layer norm, MoE,
biases on the projections, fused RoPE, query groups split over TP ranks, ...) is left to the
megatron-core forward: `lean_decode_unsupported` names the first feature that rules it out,
and `generate` then uses the full forward (also for the prefill, always).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from megatron.core.transformer.transformer_layer import TransformerLayer

from vzero_nemo.parallel.groups import to_comm

_SUPPORTED_CONFIG = {
    "normalization": "RMSNorm",
    "gated_linear_unit": True,
    "add_bias_linear": False,
    "qk_layernorm": False,
    "rotary_interleaved": False,
    "apply_rope_fusion": False,
    "bias_activation_fusion": False,
    "fp32_residual_connection": False,
    "apply_residual_connection_post_layernorm": False,
    "layernorm_zero_centered_gamma": False,
    "multi_latent_attention": False,
    "sequence_parallel": False,
    "use_te_activation_func": False,
    "attention_output_gate": False,
    "num_moe_experts": None,
    "use_mup": False,
    "activation_func_clamp_value": None,
}


def lean_decode_unsupported(lm) -> str | None:
    """None when `LeanDecoder` reproduces `lm`'s decode forward exactly, else the reason."""
    config = lm.config
    for name, value in _SUPPORTED_CONFIG.items():
        if getattr(config, name, value) != value:
            return f"{name}={getattr(config, name)!r}"
    if config.activation_func is not F.silu:
        return f"activation_func={config.activation_func!r}"
    if getattr(lm, "position_embedding_type", None) != "mrope":
        return f"position_embedding_type={getattr(lm, 'position_embedding_type', None)!r}"
    tp = lm.pg_collection.tp.size()
    if config.num_query_groups < tp:
        return f"num_query_groups={config.num_query_groups} < TP={tp}"
    for layer in lm.decoder.layers:
        if type(layer) is not TransformerLayer:
            return f"layer type {type(layer).__name__}"
        attention, mlp = layer.self_attention, layer.mlp
        norms = (layer.input_layernorm, layer.pre_mlp_layernorm)
        if any(not isinstance(n, torch.nn.RMSNorm) for n in norms):
            return f"layer norms {[type(n).__name__ for n in norms]} (not torch RMSNorm)"
        linears = {
            "linear_qkv": attention.linear_qkv,
            "linear_proj": attention.linear_proj,
            "linear_fc1": mlp.linear_fc1,
            "linear_fc2": mlp.linear_fc2,
        }
        for name, linear in linears.items():
            if type(linear).__name__ not in ("ColumnParallelLinear", "RowParallelLinear"):
                return f"{name} is {type(linear).__name__}"
            if name != "linear_qkv" and getattr(linear, "bias", None) is not None:
                return f"{name} has a bias"
        if attention.linear_qkv.gather_output or getattr(attention, "q_layernorm", None):
            return "linear_qkv gathers its output or has a q layer norm"
        if getattr(attention, "_yarn_concentration_factor", 1.0) != 1.0:
            return "YaRN attention scaling"
        if attention.linear_qkv.skip_bias_add:
            return "linear_qkv skips its bias add"
    return None


class LeanDecoder:
    """Decode forward of the stage's layers: [1, B] token ids (first stage) or the previous
    stage's hidden states [1, B, H], and M-RoPE positions [3, B, 1] -> hidden states
    [1, B, H] after the final norm (last stage) or for the next stage."""

    def __init__(self, lm) -> None:
        reason = lean_decode_unsupported(lm)
        if reason is not None:
            raise ValueError(f"lean decode does not support this model: {reason}")
        self.lm = lm
        self.tp_group = lm.pg_collection.tp
        self.tp_reduce = self.tp_group.size() > 1
        attention = lm.decoder.layers[0].self_attention if lm.decoder.layers else None
        if attention is not None:
            self.groups = attention.num_query_groups_per_partition
            self.query_per_group = attention.num_attention_heads_per_partition // self.groups
            self.head_dim = attention.hidden_size_per_attention_head
        self.final_norm = getattr(lm.decoder, "final_layernorm", None) if lm.post_process else None

    def __call__(
        self, input_ids_B1: torch.Tensor | None, hidden_1BH: torch.Tensor | None, positions_3B1
    ) -> torch.Tensor:
        lm = self.lm
        if lm.pre_process:
            hidden_1BH = lm.embedding(input_ids=input_ids_B1, position_ids=None)
        freqs_1B1D = lm.rotary_pos_emb(positions_3B1, lm.mrope_section)
        dtype = hidden_1BH.dtype
        cos, sin = torch.cos(freqs_1B1D).to(dtype), torch.sin(freqs_1B1D).to(dtype)
        for layer in lm.decoder.layers:
            hidden_1BH = self._layer(layer, hidden_1BH, cos, sin)
        if self.final_norm is not None:
            hidden_1BH = self.final_norm(hidden_1BH)
        return hidden_1BH

    def _rope(self, t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rot = cos.shape[-1]
        head, rest = t[..., :rot], t[..., rot:]
        x1, x2 = torch.chunk(head, 2, dim=-1)
        rotated = (head * cos) + (torch.cat((-x2, x1), dim=-1) * sin)
        return torch.cat((rotated, rest), dim=-1)

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of a row-parallel projection's partial outputs over TP (as megatron-core's
        `reduce_from_tensor_model_parallel_region`), on the communication device."""
        if not self.tp_reduce:
            return x
        out = to_comm(x.contiguous())
        dist.all_reduce(out, group=self.tp_group)
        return out.to(x.device)

    def _layer(self, layer, hidden_1BH, cos, sin) -> torch.Tensor:
        attention, mlp = layer.self_attention, layer.mlp
        x = layer.input_layernorm(hidden_1BH)
        qkv = torch.matmul(x, attention.linear_qkv.weight.t())
        if attention.linear_qkv.bias is not None:
            qkv = qkv + attention.linear_qkv.bias
        dim, per_group = self.head_dim, self.query_per_group
        qkv = qkv.view(*qkv.shape[:2], self.groups, (per_group + 2) * dim)
        query, key, value = torch.split(qkv, [per_group * dim, dim, dim], dim=3)
        query = query.reshape(query.size(0), query.size(1), -1, dim)
        query, key = self._rope(query, cos, sin), self._rope(key, cos, sin)
        context = attention.core_attention(query, key, value, None)
        out = self._reduce(torch.matmul(context, attention.linear_proj.weight.t()))
        hidden_1BH = hidden_1BH + out
        x = layer.pre_mlp_layernorm(hidden_1BH)
        gate, up = torch.chunk(torch.matmul(x, mlp.linear_fc1.weight.t()), 2, dim=-1)
        out = self._reduce(torch.matmul(F.silu(gate) * up, mlp.linear_fc2.weight.t()))
        return hidden_1BH + out
