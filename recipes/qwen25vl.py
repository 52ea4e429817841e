"""Qwen2.5-VL recipes for H100-80GB clusters of 8-GPU nodes (bf16, full fine-tuning).

    sbatch slurm/vzero_7b.sh     # qwen25vl_7b_1n8g
    sbatch slurm/vzero_32b.sh    # qwen25vl_32b_4n8g
    sbatch slurm/vzero_70b.sh    # qwen25vl_72b_8n8g

Memory and time come from the planner, never from hand arithmetic:

    python -m vzero_nemo.plan --recipe qwen25vl_72b_8n8g       # stages, memory, time, ranking
    python -m vzero_nemo.train --recipe qwen25vl_72b_8n8g --dry-run

Each docstring below quotes the planner's peak per GPU (the most loaded pipeline stage, every
sequence padded to model.seq_length = 4096 tokens, 1024-token images, of the 75.6 GiB the
planner leaves usable on an H100-80GB); a unit test keeps the quotes equal to the planner.
The first stage also holds the Qwen2.5-VL vision tower (0.68B parameters, replicated over TP)
and, as a Hugging Face module outside megatron's recompute, its activations: 7.5 GiB per
1024-token image for every micro-batch in flight, which is what bounds the micro-batch here.
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
    """7B on 1 node (the paper's setting). TP=2, PP=1, DP=4, micro-batch 1, selective
    recompute, reference resident: planner peak 64.5 GiB per GPU (training; static 45.9 GiB).
    A micro-batch of 4 would need 120.2 GiB. The planner ranks TP=4, DP=2 ~16% faster
    (rollout reads half the weights per decode step), before TP communication."""
    cfg = _qwen25vl("qwen25vl_7b_1n8g", "7b", nodes=1, tp=2, pp=1, games=64, micro_batch=1)
    cfg.model.recompute = "selective"
    return cfg


def qwen25vl_32b_4n8g() -> VZeroConfig:
    """32B on 4 nodes. TP=8, PP=2, DP=2, micro-batch 1, full recompute, reference resident:
    planner peak 53.7 GiB per GPU (training, stage 0). A micro-batch of 2 would need 71.7 GiB
    (two more images' vision activations in flight); no recompute 67.0 GiB for ~25% less
    training time, a thinner margin than the planner's measured error on peaks."""
    cfg = _qwen25vl("qwen25vl_32b_4n8g", "32b", nodes=4, tp=8, pp=2, games=64, micro_batch=1)
    cfg.model.recompute = "full"
    return cfg


def qwen25vl_72b_8n8g() -> VZeroConfig:
    """72B (the 70B-class run) on 8 nodes. TP=8, PP=4, DP=2, micro-batch 1, full recompute,
    reference offloaded to host memory: planner peak 69.8 GiB per GPU (training, stage 0:
    static 34.1 GiB, the vision activations of 4 micro-batches in flight 30.0 GiB). The
    reference resident would need 75.5 GiB, at the edge of what is usable; no recompute
    93.0 GiB. The planner ranks TP=8, PP=2, DP=4 (64.7 GiB) ~15% faster: decoding passes
    fewer stages."""
    cfg = _qwen25vl("qwen25vl_72b_8n8g", "72b", nodes=8, tp=8, pp=4, games=64, micro_batch=1)
    cfg.model.recompute = "full"
    cfg.model.offload_reference = True
    return cfg
