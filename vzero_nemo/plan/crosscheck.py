"""Check the planner against measured memory on CPU and against published GPU layouts.

    python -m vzero_nemo.plan.crosscheck --out docs/results/planner_crosscheck.md

1. Measured (`vzero_nemo.plan.measure`, one subprocess per row, CPU, fp32, local kernels):
   a real training step of the tiny model (no / selective / full recompute), of `tiny_l`,
   and of `7b_1layer` (the 7B widths at one language layer and one vision block, two
   448x448 images; ~8 GB of RAM, skip it with --skip-7b). Compared: static state (exact
   tensor bytes), the activations kept for backward, and the step's peak above the static
   state (process RSS, so allocator slack counts as used) against the larger of the
   planner's training and optimizer-step phases.
2. Published layouts on H100-80GB: Megatron-Bridge's Qwen2.5-VL full-SFT recipes
   (`qwen25_vl_{7b_sft_2gpu,32b_sft_16gpu,72b_sft_32gpu}_h100_bf16_config`: TP/PP as
   published, micro-batch 2, sequence 4096, distributed optimizer with DP=1, fp32 gradients
   and Adam state, no recompute) with 1024-token images, and NeMo-RL's GRPO recipe
   `grpo-llama3.3-70b-instruct-4n8g` (TP=4, PP=8, sequence parallel, micro-batch 1, 4096
   packed tokens, bf16 gradients, reference on the host; its vLLM rollout is not ours and
   is not planned). Llama-3.3-70B is planned with its own published widths (FFN 28672,
   vocabulary 128256) over our 72B entry, without a vision tower. For each: the planner's
   peak and verdict at the published sequence length, and the longest sequence that fits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from vzero_nemo.cli import build_config
from vzero_nemo.models.sizes import dims_for
from vzero_nemo.plan import plan_config
from vzero_nemo.plan.devices import GiB, device_spec
from vzero_nemo.plan.job import Job, Layout, Model, Workload
from vzero_nemo.plan.memory import plan_memory

MEASURED_ROWS: dict[str, list[str]] = {
    "tiny, no recompute": ["train.micro_batch_size=8"],
    "tiny, selective recompute": ["train.micro_batch_size=8", "model.recompute=selective"],
    "tiny, full recompute": ["train.micro_batch_size=8", "model.recompute=full"],
    "tiny_l (2x width and depth)": ["model.size=tiny_l", "train.micro_batch_size=4"],
    "7b_1layer (7B widths, 1 layer)": [
        "model.size=7b_1layer",
        "model.seq_length=512",
        "model.min_pixels=200704",
        "model.max_pixels=200704",
        "train.micro_batch_size=2",
    ],
}


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasuredRow:
    name: str
    static_planned: int
    static_measured: int
    saved_planned: int
    saved_measured: int
    peak_planned: int
    peak_measured: int


def measure_row(name: str, overrides: list[str], root: Path) -> MeasuredRow:
    """Run the measurement of `overrides` (tiny_cpu recipe) in a fresh process; plan the same
    step (its rows' response length sets where logits are computed)."""
    cfg = build_config("tiny_cpu", overrides, 1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "measured.json"
        subprocess.run(
            [sys.executable, "-m", "vzero_nemo.plan.measure", *overrides, "--json", str(out)],
            check=True, cwd=root, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        measured = json.loads(out.read_text())
    job = plan_config(cfg).job
    job = replace(job, work=replace(job.work, response_tokens=measured["response_tokens"]))
    memory = plan_memory(job)
    training = memory.phases["training"]
    saved = sum(v for k, v in training.items() if k != "backward working set")
    static = sum(v for k, v in memory.static.items() if not k.startswith("reference"))
    return MeasuredRow(
        name=name,
        static_planned=static,
        static_measured=measured["weights"] + measured["gradients"] + measured["optimizer"],
        saved_planned=saved,
        saved_measured=measured["activations"],
        peak_planned=max(sum(training.values()), sum(memory.phases["optimizer step"].values())),
        peak_measured=measured["peak_above_static"],
    )


def _sft_job(size: str, tp: int, pp: int, seq: int) -> Job:
    dims = dims_for(size)
    assert dims.vocab_size is not None
    return Job(
        model=Model(dims=dims, vocab_size=dims.vocab_size, dtype_bytes=2, with_reference=False),
        layout=Layout(tp=tp, pp=pp, dp=1, distributed_optimizer=True, micro_batch=2),
        work=Workload(
            games=32, turns=(), max_batch=1, trained_per_game=1, train_tokens=seq,
            seq_tokens=seq, response_tokens=seq, steps_per_iteration=1, image_patches=4096,
        ),
    )  # fmt: skip


def _nemo_rl_70b(seq: int) -> Job:
    dims = replace(dims_for("72b"), ffn_hidden_size=28672, vocab_size=128256)
    return Job(
        model=Model(
            dims=dims, vocab_size=128256, dtype_bytes=2, grad_bytes=2, with_vision=False,
        ),
        layout=Layout(
            tp=4, pp=8, dp=1, sequence_parallel=True, distributed_optimizer=True,
            micro_batch=1, offload_reference=True,
        ),
        work=Workload(
            games=2048, turns=(), max_batch=1, trained_per_game=1, train_tokens=seq,
            seq_tokens=seq, response_tokens=seq, steps_per_iteration=1, image_patches=0,
        ),
    )  # fmt: skip


PUBLISHED = {
    "Megatron-Bridge qwen25_vl_7b_sft_2gpu (TP2)": lambda s: _sft_job("7b", 2, 1, s),
    "Megatron-Bridge qwen25_vl_32b_sft_16gpu (TP8 PP2)": lambda s: _sft_job("32b", 8, 2, s),
    "Megatron-Bridge qwen25_vl_72b_sft_32gpu (TP8 PP4)": lambda s: _sft_job("72b", 8, 4, s),
    "NeMo-RL grpo-llama3.3-70b-4n8g (TP4 PP8 SP)": _nemo_rl_70b,
}


def longest_fitting(make, capacity: int, limit: int = 4096) -> int:
    """Longest sequence (multiple of 128, <= limit) whose plan fits; 0 if none does."""
    best = 0
    for seq in range(128, limit + 1, 128):
        if plan_memory(make(seq)).peak_bytes <= capacity:
            best = seq
    return best


def _pct(planned: int, measured: int) -> str:
    return f"{100 * (planned / measured - 1):+.0f}%"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def markdown(measured: list[MeasuredRow], command: str) -> str:
    lines = [
        "# Planner cross-checks",
        "",
        f"Made by `{command}`.",
        "",
        "## Measured on CPU (fp32, one process, a real training step)",
        "",
        "| model | static MiB planned / measured | kept for backward MiB planned / measured "
        "(error) | step peak above static MiB planned / measured RSS (error) |",
        "|---|---|---|---|",
    ]
    for r in measured:
        lines.append(
            f"| {r.name} | {_mib(r.static_planned)} / {_mib(r.static_measured)} | "
            f"{_mib(r.saved_planned)} / {_mib(r.saved_measured)} "
            f"({_pct(r.saved_planned, r.saved_measured)}) | {_mib(r.peak_planned)} / "
            f"{_mib(r.peak_measured)} ({_pct(r.peak_planned, r.peak_measured)}) |"
        )
    h100 = device_spec("h100-80gb")
    lines += [
        "",
        f"## Published layouts on {h100.description} ({h100.usable_bytes / GiB:.1f} GiB usable)",
        "",
        "| layout | static per GPU | peak per GPU at 4096 tokens, 1024-token images | fits "
        "| longest sequence that fits, 1024- / 256-token images |",
        "|---|---|---|---|---|",
    ]
    for name, make in PUBLISHED.items():
        plan = plan_memory(make(4096))
        fits = plan.peak_bytes <= h100.usable_bytes
        longest = [
            longest_fitting(with_patches(make, patches), h100.usable_bytes) or "none"
            for patches in (4096, 1024)
        ]
        lines.append(
            f"| {name} | {sum(plan.static.values()) / GiB:.1f} GiB | {plan.peak_bytes / GiB:.1f} "
            f"GiB ({plan.peak_phase}, stage {plan.stage}) | {'yes' if fits else 'no'} | "
            f"{longest[0]} / {longest[1]} |"
        )
    return "\n".join(lines) + "\n"


def with_patches(make, patches: int):
    """`make` with images of `patches` vision patches (text-only layouts stay text-only)."""

    def build(seq: int) -> Job:
        job = make(seq)
        if not job.work.image_patches:
            return job
        return replace(job, work=replace(job.work, image_patches=patches))

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.plan.crosscheck")
    parser.add_argument("--out", type=Path, required=True, help="markdown table to write")
    parser.add_argument("--skip-7b", action="store_true", help="skip the ~8 GB 7b_1layer row")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    rows = [
        measure_row(name, overrides, root)
        for name, overrides in MEASURED_ROWS.items()
        if not (args.skip_7b and name.startswith("7b"))
    ]
    command = "python -m vzero_nemo.plan.crosscheck --out " + str(args.out)
    text = markdown(rows, command + (" --skip-7b" if args.skip_7b else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
