"""Memory and time planner: what fits on which GPUs, before any GPU hour is spent.

    python -m vzero_nemo.plan --recipe qwen25vl_72b_8n8g [key=value ...]
    python -m vzero_nemo.plan --size 72b --nodes 8 --gpus-per-node 8 --gpu h100-80gb

Pure arithmetic over the model dimensions of `vzero_nemo.models.sizes` (the table the model
providers are built from) and the config: `job` (what is planned), `memory` (bytes per GPU,
per stage and phase), `timing` (FLOPs and bytes -> predicted iteration split), `layouts`
(ranking of TP/PP/DP), `devices` (H100 / H200 / A100 datasheets, a measured CPU), `report`
(the printouts). `plan_config` is what `python -m vzero_nemo.train --dry-run` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from vzero_nemo.config import VZeroConfig
from vzero_nemo.plan.devices import DeviceSpec, capacity_bytes, device_spec
from vzero_nemo.plan.job import Job, job_from_config
from vzero_nemo.plan.memory import MemoryPlan, layout_errors, plan_memory


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfigPlan:
    job: Job
    memory: MemoryPlan
    device: DeviceSpec
    capacity_bytes: int
    """Memory one process may use on `device`."""

    @property
    def fits(self) -> bool:
        return self.memory.peak_bytes <= self.capacity_bytes


def plan_config(cfg: VZeroConfig, *, timing: bool = False) -> ConfigPlan:
    """Plan a finalized config's own layout; ValueError names a layout megatron cannot build.
    `timing=False` skips measuring a CPU's peak (memory needs none)."""
    job = job_from_config(cfg)
    errors = layout_errors(job.model, job.layout)
    if errors:
        raise ValueError(
            f"model.size={cfg.model.size} cannot be laid out as {job.layout.describe()}: "
            f"{'; '.join(errors)}; change parallel.tensor_model_parallel_size / "
            "pipeline_model_parallel_size / virtual_pipeline_model_parallel_size"
        )
    device = device_spec(cfg.launch.gpu, timing=timing)
    return ConfigPlan(
        job=job,
        memory=plan_memory(job),
        device=device,
        capacity_bytes=capacity_bytes(device, cfg.launch.gpus_per_node),
    )
