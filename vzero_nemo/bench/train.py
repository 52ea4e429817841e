"""Self-play throughput: tokens/s/GPU of rollout and training, MFU, and the time split.

    python -m vzero_nemo.bench.train --recipe tiny_cpu --iterations 3 --make-data
    torchrun --nproc-per-node 2 -m vzero_nemo.bench.train --recipe tiny_cpu \\
        parallel.tensor_model_parallel_size=2 --iterations 3
    python -m vzero_nemo.bench.train --recipe tiny_cpu model.params_dtype=bf16 \\
        parallel.backend=nccl --iterations 4 --make-data          # one GPU, unchanged

Runs real iterations of the configured recipe through the trainer (`training.trainer.
run_iteration`: rollout, reference log-probs, optimizer steps; nothing is saved) after
`--warmup` untimed ones, on whatever device the parallel state picked (CUDA when present).
The clock is synchronised with the device (`torch.cuda.synchronize`) around every iteration;
the split is the trainer's own per-phase timers, each phase ending in a host read.

Per iteration and in total it prints:
- rollout: generated tokens / rollout time / GPUs;
- training: tokens of the trained sequences (prompt + response, no padding) / time of the
  optimizer steps / GPUs, and end to end the same tokens / iteration time / GPUs (NeMo-RL's
  tokens/s/GPU);
- MFU of the training phase: model FLOPs (3 x the forward FLOPs of the planner,
  `plan.timing.forward_flops`, over the trained sequences, recompute not counted) / (time
  x GPUs x peak). Peak: the dense bf16 datasheet figure of the GPU (H100 / H200: 989 TFLOP/s,
  A100: 312), a measured bf16 matmul on another GPU, a measured fp32 matmul on CPU - stated
  in the output;
- the planner's predicted split for the same job, next to the measured one.
`--json PATH` writes every number. Weights are random unless `model.init_checkpoint` is set
(throughput does not depend on them, response lengths do: compare like with like).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
from vzero_nemo.config import VZeroConfig

BENCH_DEFAULTS = [
    "checkpoint.resume=never",
    "logging.dir=runs/bench",
    "logging.wandb_mode=disabled",
    "logging.progress_bar=false",
]
"""Placed before the user's overrides (which win): nothing resumed, logged or uploaded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Peak:
    flops: float
    source: str


def device_peak(device: torch.device) -> Peak:
    """The dense matmul peak MFU is measured against (see the module docstring)."""
    from vzero_nemo.plan.devices import measure_cpu, spec_for_cuda_name

    if device.type != "cuda":
        spec = measure_cpu()
        return Peak(flops=spec.peak_flops, source=spec.source)
    name = torch.cuda.get_device_name(device)
    spec = spec_for_cuda_name(name)
    if spec is not None:
        return Peak(flops=spec.peak_flops, source=f"{name}: {spec.source}")
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    torch.mm(a, a)
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        torch.mm(a, a)
    torch.cuda.synchronize(device)
    flops = 10 * 2 * 8192**3 / (time.perf_counter() - start)
    return Peak(flops=flops, source=f"{name}: measured bf16 8192^3 matmul")


def make_data(path: Path) -> None:
    """120 CLEVR grid pairs (48x48, 12 shards, val split) at `path`, as the tests use."""
    cmd = [
        sys.executable, "-m", "data_prep", "generate", "--domain", "clevr", "--num-pairs",
        "120", "--seed", "3", "--opt", "layout=grid", "--opt", "width=48", "--opt",
        "height=48", "--opt", "cell_size=16", "--out", str(path), "--pairs-per-shard", "10",
        "--val-fraction", "0.2", "--workers", "1", "--no-progress",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=600)


def trained_tokens_and_flops(result, cfg: VZeroConfig) -> tuple[float, float]:
    """(tokens, model FLOPs) of the sequences the iteration trained, summed over DP ranks."""
    from vzero_nemo.parallel.groups import all_reduce_sum
    from vzero_nemo.plan.job import model_from_config
    from vzero_nemo.plan.timing import forward_flops

    model = model_from_config(cfg)
    stage = result.metrics["stage"]
    tokens = flops = 0.0
    for sample in result.rollout.samples:
        seq = result.rollout.sequences.get(sample.request_id)
        if sample.stage != stage or seq is None:
            continue
        length = seq.length
        patches = int(seq.prompt.image_grid_thw.prod())
        tokens += length
        flops += 3.0 * forward_flops(model, length, 1, patches)
    return all_reduce_sum(tokens), all_reduce_sum(flops)


def measure(tr, cfg: VZeroConfig, iterations: int, warmup: int, peak: Peak) -> list[dict]:
    from vzero_nemo.parallel.groups import get_parallel_state
    from vzero_nemo.training.trainer import run_iteration

    device = get_parallel_state().device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    world = cfg.world_size or 1
    rows = []
    for index in range(warmup + iterations):
        sync()
        start = time.perf_counter()
        result = run_iteration(tr)
        sync()
        wall = time.perf_counter() - start
        if index < warmup:
            continue
        m = result.metrics
        tokens, flops = trained_tokens_and_flops(result, cfg)
        generated = m["perf/rollout_tokens_per_s"] * m["time/rollout_s"]
        rows.append(
            {
                "iteration": index - warmup + 1,
                "stage": m["stage"],
                "iteration_s": wall,
                "rollout_s": m["time/rollout_s"],
                "logprobs_s": m["time/logprobs_s"],
                "train_s": m["time/train_s"],
                "other_s": wall - m["time/rollout_s"] - m["time/logprobs_s"] - m["time/train_s"],
                "generated_tokens": generated,
                "trained_tokens": tokens,
                "model_flops": flops,
                "gpus": world,
                "peak_flops": peak.flops,
            }
        )
    return rows


def rates(row: dict) -> dict:
    g = row["gpus"]
    return {
        "rollout_tokens_per_s_per_gpu": row["generated_tokens"] / row["rollout_s"] / g,
        "train_tokens_per_s_per_gpu": row["trained_tokens"] / row["train_s"] / g,
        "end_to_end_tokens_per_s_per_gpu": row["trained_tokens"] / row["iteration_s"] / g,
        "train_mfu": row["model_flops"] / (row["train_s"] * g * row["peak_flops"]),
    }


def total_row(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k.endswith("_s") or k.endswith("tokens") or k == "model_flops"]
    total = {k: sum(r[k] for r in rows) for k in keys}
    total.update(
        iteration="total", stage="-", gpus=rows[0]["gpus"], peak_flops=rows[0]["peak_flops"]
    )
    return total


def print_table(rows: list[dict], cfg: VZeroConfig, peak: Peak, device: torch.device) -> None:
    print(
        f"bench.train: recipe {cfg.recipe}, model.size={cfg.model.size}, "
        f"{cfg.model.params_dtype}, world size {cfg.world_size} on {device.type} "
        f"(TP={cfg.parallel.tensor_model_parallel_size} PP={cfg.parallel.pipeline_model_parallel_size} "
        f"DP={cfg.parallel.data_parallel_size}); MFU peak {peak.flops / 1e12:.3g} TFLOP/s per GPU "
        f"({peak.source})"
    )
    header = f"{'iter':>5} {'stage':>8} {'total s':>8} {'rollout':>8} {'logprob':>8} {'train':>8}"
    print(
        header
        + f" {'other':>7} {'roll tok/s/GPU':>14} {'train tok/s/GPU':>15} {'e2e tok/s/GPU':>13} {'MFU':>7}"
    )
    for row in [*rows, total_row(rows)]:
        r = rates(row)
        print(
            f"{row['iteration']:>5} {row['stage']:>8} {row['iteration_s']:>8.2f} "
            f"{row['rollout_s']:>8.2f} {row['logprobs_s']:>8.2f} {row['train_s']:>8.2f} "
            f"{row['other_s']:>7.2f} {r['rollout_tokens_per_s_per_gpu']:>14.1f} "
            f"{r['train_tokens_per_s_per_gpu']:>15.1f} {r['end_to_end_tokens_per_s_per_gpu']:>13.1f} "
            f"{r['train_mfu']:>7.2%}"
        )


def predicted(cfg: VZeroConfig, device: torch.device) -> dict[str, float] | None:
    """The planner's split for the same job on this device (CPU: its measured peak; a GPU
    not in the datasheet table: None)."""
    from vzero_nemo.plan.devices import measure_cpu, spec_for_cuda_name
    from vzero_nemo.plan.job import job_from_config
    from vzero_nemo.plan.timing import predict_times

    spec = (
        measure_cpu()
        if device.type != "cuda"
        else spec_for_cuda_name(torch.cuda.get_device_name(device))
    )
    if spec is None:
        return None
    t = predict_times(job_from_config(cfg), spec)
    return {"rollout_s": t.rollout_s, "logprobs_s": t.reference_s, "train_s": t.training_s}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.bench.train", description=__doc__)
    add_config_arguments(parser, default_recipe=None)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--make-data", action="store_true", help="generate data.path if missing")
    parser.add_argument("--json", type=Path, help="write the per-iteration numbers here")
    args, cfg = config_from_argv(
        parser, [*BENCH_DEFAULTS, *(sys.argv[1:] if argv is None else argv)]
    )
    if args.iterations < 1 or args.warmup < 0:
        fail(f"--iterations={args.iterations} must be >= 1 and --warmup={args.warmup} >= 0")
    if cfg.data.path is not None and not Path(cfg.data.path).is_dir():
        if not args.make_data:
            fail(
                f"data.path={cfg.data.path!r} does not exist; pass --make-data or point data.path at shards"
            )
        make_data(Path(cfg.data.path))
    return run(cfg, args)


def run(cfg: VZeroConfig, args: argparse.Namespace) -> dict:
    from vzero_nemo.training.loop import setup_trainer, shutdown

    tr = setup_trainer(cfg)
    try:
        peak = device_peak(tr.par.device)
        rows = measure(tr, cfg, args.iterations, args.warmup, peak)
        out = {"rows": rows, "total": {**total_row(rows), **rates(total_row(rows))}}
        if tr.par.is_main:
            print_table(rows, cfg, peak, tr.par.device)
            out["predicted"] = predicted(cfg, tr.par.device)
            if out["predicted"] is not None:
                split = ", ".join(f"{k} {v:.2f}" for k, v in out["predicted"].items())
                print(f"planner's prediction per iteration (40% MFU, 70% bandwidth): {split}")
            if args.json:
                args.json.write_text(json.dumps(out, indent=2))
    finally:
        shutdown()
    return out


if __name__ == "__main__":
    main()
