"""Config sections of the model and its placement: `model`, `parallel`, `launch`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vzero_nemo.config.checks import require
from vzero_nemo.models.sizes import uses_project_tokenizer


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    size: Literal["tiny", "tiny_s", "tiny_l", "7b_1layer", "7b", "32b", "72b", "auto"] = "tiny"
    """Named Qwen2.5-VL size. `tiny` is a few-million-parameter model of the same
    architecture that runs on CPU (`tiny_s` / `tiny_l`: half / twice its language model's
    width and depth; `7b_1layer`: the 7B widths at one layer, for memory checks); 7b / 32b /
    72b match the published checkpoints. `auto` takes the dimensions from
    `hf_path/config.json` (any Qwen2.5-VL: 3B, depth-reduced models)."""
    hf_path: str | None = None
    """Local directory of a Hugging Face Qwen2.5-VL checkpoint (weights, tokenizer, processor)
    to import. Never downloaded: it must exist on disk."""
    tokenizer_path: str | None = None
    """Tokenizer directory; defaults to `hf_path` for real sizes and to the project's own
    tokenizer (built offline) for `tiny`."""
    init_checkpoint: str | None = None
    """Megatron dist-checkpoint to initialise the policy (and reference) from, e.g. the tiny
    model's pre-training output. Ignored when resuming a run."""
    params_dtype: Literal["fp32", "bf16"] = "fp32"
    """Parameter and compute dtype. bf16 on GPU recipes, fp32 on CPU."""
    seq_length: int = 512
    """Maximum tokens per sequence (prompt + response) the model is built for."""
    min_pixels: int = 48 * 48
    """Smallest image area (pixels) after Qwen2.5-VL's smart resize."""
    max_pixels: int = 48 * 48
    """Largest image area (pixels) after Qwen2.5-VL's smart resize."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation granularity (megatron-core `recompute_granularity`)."""
    offload_reference: bool = False
    """Keep the frozen reference model on CPU between its forward passes (GPU memory)."""
    freeze_vision: bool = False
    """Freeze the vision tower. The paper fine-tunes everything (default False)."""

    def validate(self) -> None:
        require(self.seq_length >= 16, f"model.seq_length={self.seq_length} must be >= 16")
        require(
            0 < self.min_pixels <= self.max_pixels,
            f"model.min_pixels={self.min_pixels} must be > 0 and <= "
            f"model.max_pixels={self.max_pixels}",
        )
        require(
            self.size != "auto" or self.hf_path is not None,
            "model.size=auto reads the dimensions from model.hf_path/config.json; "
            "set model.hf_path",
        )
        require(
            uses_project_tokenizer(self.size)
            or self.hf_path is not None
            or self.init_checkpoint is not None,
            f"model.size={self.size} needs model.hf_path (a local HF checkpoint directory) or "
            "model.init_checkpoint; weights are never downloaded",
        )


@dataclass(kw_only=True, slots=True)
class ParallelConfig:
    tensor_model_parallel_size: int = 1
    """Tensor-parallel size (TP)."""
    pipeline_model_parallel_size: int = 1
    """Pipeline-parallel size (PP)."""
    virtual_pipeline_model_parallel_size: int | None = None
    """Interleaved pipeline chunks per PP rank (VPP); None disables interleaving."""
    data_parallel_size: int | None = None
    """Derived by `finalize` as world_size / (TP * PP); set it only to assert a value."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """torch.distributed backend; `auto` picks nccl when CUDA is present, else gloo."""
    sequence_parallel: bool = False
    """Megatron sequence parallelism (GPU only, needs TP > 1)."""
    use_distributed_optimizer: bool = False
    """Shard optimizer state over DP ranks (GPU only)."""
    check_collectives: bool = False
    """Debug: assert that every collective the project issues gets tensors on the backend's
    communication device (CUDA for nccl), so a CPU (gloo) run catches what would fail under
    NCCL (`vzero_nemo.parallel.collective_check`)."""

    def validate(self) -> None:
        """Sizes on their own; `finalize` checks them against the world size."""
        tp, pp = self.tensor_model_parallel_size, self.pipeline_model_parallel_size
        require(tp >= 1, f"parallel.tensor_model_parallel_size={tp} must be >= 1")
        require(pp >= 1, f"parallel.pipeline_model_parallel_size={pp} must be >= 1")
        vpp = self.virtual_pipeline_model_parallel_size
        require(
            vpp is None or (vpp >= 2 and pp >= 2),
            f"parallel.virtual_pipeline_model_parallel_size={vpp} needs >= 2 and PP >= 2",
        )
        require(
            not self.sequence_parallel or tp > 1,
            "parallel.sequence_parallel=true needs tensor_model_parallel_size > 1",
        )


@dataclass(kw_only=True, slots=True)
class LaunchConfig:
    """The job shape a recipe is laid out for. `python -m vzero_nemo.train --dry-run` and
    `python -m vzero_nemo.plan` resolve the layout for it when no WORLD_SIZE is set; a launched
    job's world size comes from torchrun / Slurm (`sbatch --nodes=16` scales DP)."""

    nodes: int = 1
    gpus_per_node: int = 1
    """Processes per node: one per GPU (CPU recipes: processes)."""
    gpu: Literal["h100-80gb", "h200-141gb", "a100-80gb", "cpu"] = "cpu"
    """Device the planner sizes memory and time for (`vzero_nemo.plan.devices`)."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    def validate(self) -> None:
        require(self.nodes >= 1, f"launch.nodes={self.nodes} must be >= 1")
        require(self.gpus_per_node >= 1, f"launch.gpus_per_node={self.gpus_per_node} must be >= 1")
