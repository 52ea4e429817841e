"""Text the planner prints: the resolved layout (also `train --dry-run`), memory, time, ranking."""

from __future__ import annotations

from vzero_nemo.config import VZeroConfig
from vzero_nemo.plan.devices import DeviceSpec, GiB
from vzero_nemo.plan.job import Job
from vzero_nemo.plan.layouts import RankedLayout
from vzero_nemo.plan.memory import MemoryPlan, plan_memory, stage_params, with_layout
from vzero_nemo.plan.timing import IterationTime


def gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= 0.1 * GiB else f"{n / 2**20:.1f} MiB"


def billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"


def batch_lines(job: Job) -> list[str]:
    work, layout = job.work, job.layout
    per_rank = work.step_sequences_per_rank(layout.dp)
    micro = -(-per_rank // layout.micro_batch)
    return [
        f"batch: {work.games} games per iteration -> {work.games * work.trained_per_game} "
        f"trained sequences (decision stage), {work.steps_per_iteration} optimizer step(s): "
        f"global batch {per_rank * layout.dp} sequences, {per_rank} per DP rank = "
        f"{micro} micro-batch(es) of {layout.micro_batch} rows",
    ]


def stage_lines(job: Job) -> list[str]:
    lines = ["pipeline stages (parameters on one GPU of the stage, TP share):"]
    for stage in range(job.layout.pp):
        p = stage_params(job.model, job.layout, stage)
        ranges = ", ".join(f"{a}-{b - 1}" for a, b in p.layer_ranges)
        extra = []
        if stage == 0:
            extra += ["embedding", "vision tower"]
        if stage == job.layout.pp - 1:
            extra += ["output layer"]
        more = f" + {' + '.join(extra)}" if extra else ""
        lines.append(f"  stage {stage}: layers {ranges}{more}: {billions(p.total)} parameters")
    return lines


def memory_lines(memory: MemoryPlan, capacity: int, device: DeviceSpec, seq: int) -> list[str]:
    static = ", ".join(f"{k} {gib(v)}" for k, v in memory.static.items())
    lines = [
        f"memory per GPU (planner; stage {memory.stage}, every sequence at model.seq_length="
        f"{seq} tokens): static {gib(sum(memory.static.values()))} ({static})"
    ]
    for phase, parts in memory.phases.items():
        detail = ", ".join(f"{k} {gib(v)}" for k, v in parts.items())
        lines.append(f"  {phase:<14} {gib(memory.phase_total(phase)):>10}  (+ {detail})")
    verdict = "fits" if memory.peak_bytes <= capacity else "DOES NOT FIT"
    lines.append(
        f"  peak {gib(memory.peak_bytes)} ({memory.peak_phase}) of {gib(capacity)} usable on "
        f"{device.name}: {verdict}"
    )
    return lines


def layout_text(
    cfg: VZeroConfig, job: Job, memory: MemoryPlan, device: DeviceSpec, capacity: int
) -> str:
    """What `train --dry-run` prints before the config listing."""
    la = cfg.launch
    lines = [
        f"layout: {job.layout.describe()}, world size {cfg.world_size} on {la.gpu} "
        f"(launch.nodes={la.nodes} x launch.gpus_per_node={la.gpus_per_node})",
        *batch_lines(job),
        *stage_lines(job),
        *memory_lines(memory, capacity, device, job.work.seq_tokens),
    ]
    return "\n".join(lines)


def does_not_fit_message(cfg: VZeroConfig, memory: MemoryPlan, capacity: int) -> str:
    parts = {**memory.static, **memory.phases[memory.peak_phase]}
    detail = ", ".join(f"{k} {gib(v)}" for k, v in parts.items())
    return (
        f"recipe {cfg.recipe} does not fit: the planner's peak is {gib(memory.peak_bytes)} per "
        f"GPU ({memory.peak_phase}, stage {memory.stage}: {detail}) > {gib(capacity)} usable on "
        f"{cfg.launch.gpu}; lower train.micro_batch_size (now {cfg.train.micro_batch_size}) or "
        f"model.seq_length (now {cfg.model.seq_length}), set model.recompute (now "
        f"{cfg.model.recompute}) or model.offload_reference=true, or change the parallel sizes "
        f"/ launch.nodes (`python -m vzero_nemo.plan --recipe {cfg.recipe}` ranks the layouts "
        "that fit)"
    )


def variant_lines(job: Job) -> list[str]:
    """The alternatives the issue of memory asks about, each for the same layout."""
    out = ["alternatives (same layout, peak of the worst stage):"]
    for label, changes in (
        ("optimizer, distributed", {"distributed_optimizer": True}),
        ("optimizer, not distributed", {"distributed_optimizer": False}),
        ("activations, no recompute", {"recompute": "none"}),
        ("activations, selective recompute", {"recompute": "selective"}),
        ("activations, full recompute", {"recompute": "full"}),
        ("reference resident", {"offload_reference": False}),
        ("reference offloaded", {"offload_reference": True}),
    ):
        m = plan_memory(with_layout(job, **changes))
        key = "optimizer" if "optimizer" in label else None
        focus = f"optimizer {gib(m.static['optimizer'])}, " if key else ""
        if "activations" in label:
            focus = f"activations {gib(m.phases['training']['activations'])}, "
        out.append(f"  {label:<34} {focus}peak {gib(m.peak_bytes)} ({m.peak_phase})")
    return out


def time_lines(
    times: IterationTime, device: DeviceSpec, mfu: float, bw: float, gpus: int
) -> list[str]:
    total = times.total_s
    split = ", ".join(
        f"{name} {s:.1f} s ({s / total:.0%})"
        for name, s in (
            ("rollout", times.rollout_s),
            ("reference log-probs", times.reference_s),
            ("training", times.training_s),
        )
    )
    return [
        f"predicted iteration on {device.description} ({device.source}; compute at {mfu:.0%} "
        f"of {device.peak_flops / 1e12:.3g} TFLOP/s, memory at {bw:.0%} of "
        f"{device.memory_bandwidth / 1e9:.4g} GB/s, communication not modelled):",
        f"  {total:.1f} s = {split}",
        f"  training {times.train_tokens / max(times.training_s, 1e-12) / gpus:.0f} tokens/s/GPU, "
        f"rollout <= {times.generated_tokens / max(times.rollout_s, 1e-12) / gpus:.0f} generated "
        "tokens/s/GPU",
    ]


def ranking_lines(ranked: list[RankedLayout], limit: int) -> list[str]:
    header = f"  {'layout':<26} {'recompute':<9} {'peak/GPU':>10} {'fits':>4} {'iteration':>10} "
    lines = [header + f"{'rollout':>9} {'ref':>7} {'train':>8}"]
    for r in ranked[:limit]:
        t = r.times
        lines.append(
            f"  {r.job.layout.describe():<26} {r.job.layout.recompute:<9} "
            f"{gib(r.memory.peak_bytes):>10} {'yes' if r.fits else 'no':>4} {t.total_s:>9.1f}s "
            f"{t.rollout_s:>8.1f}s {t.reference_s:>6.1f}s {t.training_s:>7.1f}s"
        )
    return lines


def plan_json(cfg: VZeroConfig, plan, times: IterationTime, ranked: list[RankedLayout]) -> dict:
    """The numbers of a plan as plain JSON (bytes and seconds)."""
    memory = plan.memory
    return {
        "recipe": cfg.recipe,
        "model_size": cfg.model.size,
        "device": plan.device.name,
        "gpus": cfg.launch.world_size,
        "layout": plan.job.layout.describe(),
        "stage": memory.stage,
        "static_bytes": memory.static,
        "phase_bytes": memory.phases,
        "peak_bytes": memory.peak_bytes,
        "peak_phase": memory.peak_phase,
        "capacity_bytes": plan.capacity_bytes,
        "fits": plan.fits,
        "times_s": {
            "rollout": times.rollout_s,
            "reference": times.reference_s,
            "training": times.training_s,
        },
        "ranking": [
            {
                "layout": r.job.layout.describe(),
                "recompute": r.job.layout.recompute,
                "peak_bytes": r.memory.peak_bytes,
                "fits": r.fits,
                "iteration_s": r.times.total_s,
            }
            for r in ranked
        ],
    }
