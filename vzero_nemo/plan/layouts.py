"""Rank the TP/PP/DP layouts of a job for a number of GPUs.

    ranked = rank_layouts(job, device, gpus=64, gpus_per_node=8)

Candidates: TP a divisor of the GPUs per node (tensor parallelism stays inside NVLink) that
megatron accepts for the model (heads, KV groups, FFN and vocabulary divisible by TP), PP a
divisor of the layer count, DP = GPUs / (TP x PP) dividing the games of an iteration. For
each, the cheapest recompute mode that fits is chosen (none, then selective, then full:
recompute costs time), keeping the job's other memory options (distributed optimizer,
reference offload, micro-batch, sequence parallelism where TP > 1 allows it). Layouts that
fit come first, fastest predicted iteration first; then those that do not, smallest peak first.
"""

from __future__ import annotations

from dataclasses import dataclass

from vzero_nemo.plan.devices import DeviceSpec
from vzero_nemo.plan.job import Job
from vzero_nemo.plan.memory import MemoryPlan, layout_errors, plan_memory, with_layout
from vzero_nemo.plan.timing import IterationTime, predict_times

RECOMPUTE_ORDER = ("none", "selective", "full")


@dataclass(frozen=True, kw_only=True, slots=True)
class RankedLayout:
    job: Job
    memory: MemoryPlan
    times: IterationTime
    fits: bool


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def candidate_jobs(job: Job, gpus: int, gpus_per_node: int) -> list[Job]:
    """Every layout of `gpus` GPUs megatron can build for the job's model."""
    out = []
    for tp in divisors(gpus_per_node):
        for pp in divisors(job.model.dims.num_layers):
            if gpus % (tp * pp):
                continue
            dp = gpus // (tp * pp)
            if job.work.games % dp:
                continue
            sp = job.layout.sequence_parallel and tp > 1
            candidate = with_layout(job, tp=tp, pp=pp, dp=dp, vpp=None, sequence_parallel=sp)
            if not layout_errors(candidate.model, candidate.layout):
                out.append(candidate)
    return out


def evaluate(job: Job, device: DeviceSpec, capacity_bytes: int, **timing) -> RankedLayout:
    memory = plan_memory(job)
    return RankedLayout(
        job=job,
        memory=memory,
        times=predict_times(job, device, **timing),
        fits=memory.peak_bytes <= capacity_bytes,
    )


def cheapest_fitting(job: Job, device: DeviceSpec, capacity_bytes: int, **timing) -> RankedLayout:
    """The job under the first recompute mode that fits (or under full recompute)."""
    result = None
    for mode in RECOMPUTE_ORDER:
        result = evaluate(with_layout(job, recompute=mode), device, capacity_bytes, **timing)
        if result.fits:
            break
    assert result is not None
    return result


def rank_layouts(
    job: Job, device: DeviceSpec, *, gpus: int, gpus_per_node: int, capacity_bytes: int, **timing
) -> list[RankedLayout]:
    ranked = [
        cheapest_fitting(candidate, device, capacity_bytes, **timing)
        for candidate in candidate_jobs(job, gpus, gpus_per_node)
    ]
    return sorted(
        ranked,
        key=lambda r: (not r.fits, r.times.total_s if r.fits else r.memory.peak_bytes),
    )
