"""Qwen2.5-VL recipes for H100-80GB clusters of 8-GPU nodes (bf16, full fine-tuning).

    sbatch slurm/vzero_7b.sh     # qwen25vl_7b_1n8g
    sbatch slurm/vzero_32b.sh    # qwen25vl_32b_4n8g
    sbatch slurm/vzero_70b.sh    # qwen25vl_72b_8n8g

Memory per GPU (bf16 weights 2 B/param, fp32 grads 4 B/param, distributed optimizer with fp32
master weights + Adam moments 12 B/param sharded over DP, frozen bf16 reference 2 B/param
unless offloaded; P = parameters per GPU = total / (TP * PP)):
    weights 2P + grads 4P + optimizer 12P/DP + reference 2P (0 when offloaded)
plus activations (bounded by recompute) and the rollout KV cache. The vision tower (~0.7B)
is replicated in the first pipeline stage and is small next to the language model.
"""

from __future__ import annotations

from recipes.base import base_config
from vzero_nemo.config import VZeroConfig


def _qwen25vl(
    name: str, size: str, nodes: int, tp: int, pp: int, games: int, micro_batch: int
) -> VZeroConfig:
    cfg = base_config(name)
    cfg.launch.nodes = nodes
    cfg.launch.gpus_per_node = 8
    cfg.launch.gpu = "h100-80gb"
    cfg.model.size = size  # type: ignore[assignment]
    cfg.model.hf_path = f"/checkpoints/Qwen2.5-VL-{size.upper()}-Instruct"
    cfg.model.params_dtype = "bf16"
    cfg.model.seq_length = 4096
    cfg.model.min_pixels = 256 * 28 * 28
    cfg.model.max_pixels = 1024 * 28 * 28
    cfg.parallel.tensor_model_parallel_size = tp
    cfg.parallel.pipeline_model_parallel_size = pp
    cfg.parallel.use_distributed_optimizer = True
    # Sequence parallelism stays off: the KV-cached rollout path does not support it yet
    # (vzero_nemo.generation raises on it); activations are bounded by recompute instead.
    cfg.parallel.sequence_parallel = False
    cfg.data.path = "/data/vzero/clevr"
    cfg.data.games_per_iteration = games
    cfg.train.micro_batch_size = micro_batch
    cfg.rollout.max_clue_tokens = 512
    cfg.rollout.max_vote_tokens = 512
    cfg.checkpoint.save_interval = 5
    return cfg


def qwen25vl_7b_1n8g() -> VZeroConfig:
    """7B on 1 node (the paper's setting). TP=2, PP=1, DP=4: P = 8.3B / 2 = 4.2B;
    2P + 4P + 12P/4 + 2P = 8.3 + 16.6 + 12.5 + 8.3 = 46 GB, ~30 GB left for activations
    (selective recompute) and the KV cache of 64 games x 4 seats."""
    cfg = _qwen25vl("qwen25vl_7b_1n8g", "7b", nodes=1, tp=2, pp=1, games=64, micro_batch=4)
    cfg.model.recompute = "selective"
    return cfg


def qwen25vl_32b_4n8g() -> VZeroConfig:
    """32B on 4 nodes. TP=8, PP=2, DP=2: P = 33.5B / 16 = 2.1B;
    2P + 4P + 12P/2 + 2P = 4.2 + 8.4 + 12.6 + 4.2 = 29 GB; full recompute keeps the 4k-token
    activations of a micro-batch of 2 under ~10 GB."""
    cfg = _qwen25vl("qwen25vl_32b_4n8g", "32b", nodes=4, tp=8, pp=2, games=64, micro_batch=2)
    cfg.model.recompute = "full"
    return cfg


def qwen25vl_72b_8n8g() -> VZeroConfig:
    """72B (the 70B-class run) on 8 nodes. TP=8, PP=4, DP=2: P = 73.4B / 32 = 2.3B;
    2P + 4P + 12P/2 = 4.6 + 9.2 + 13.8 = 28 GB with the reference offloaded to host memory
    (+4.6 GB while it runs); full recompute and micro-batch 1 keep activations ~8 GB.
    KV cache: 8 KV heads x 128 dims x (K, V) x bf16 = 4 KB per token per layer; TP 8 leaves
    one KV head (0.5 KB) and PP 4 leaves 20 layers per GPU: 10 KB per token. The largest turn
    (64 games x 8 votes = 512 sequences x 4k tokens) needs ~20 GB of the ~40 GB left."""
    cfg = _qwen25vl("qwen25vl_72b_8n8g", "72b", nodes=8, tp=8, pp=4, games=64, micro_batch=1)
    cfg.model.recompute = "full"
    cfg.model.offload_reference = True
    return cfg
