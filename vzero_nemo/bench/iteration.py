"""Self-play iteration time of a recipe, optionally side by side with another checkout.

    python -m vzero_nemo.bench.iteration model.init_checkpoint=runs/tiny_cpu/pretrained \\
        data.path=runs/tiny_cpu/data
    python -m vzero_nemo.bench.iteration --against /path/to/old/checkout --rounds 2 \\
        model.init_checkpoint=runs/tiny_cpu/pretrained data.path=runs/tiny_cpu/data

Each run is a fresh process that builds the trainer of the recipe (`--recipe`, `key=value`
overrides as every command takes them) and runs `--iterations` iterations from the same
seeds, printing per iteration its wall-clock and process-CPU seconds, the `time/*` split and
two learning numbers (decision accuracy and loss, which show whether both checkouts played
the same games). The first iteration (warm-up) is left out of the medians. With `--against
DIR`, runs of this checkout and of DIR alternate (A, B, A, B, ...: a shared machine's load
then hits both alike) for `--rounds` rounds, and the ratios of the median times are printed
(this file runs there as a plain script with DIR first on the path, so it uses only
`vzero_nemo.cli` (`config_from_argv`, `build_config`), `training.loop.setup_trainer` and
`trainer.run_iteration`, which both have). `--profile` adds `train.profile=true` to this
checkout's runs and prints their profile tables (where each iteration's time went).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
SHOWN = ("time/rollout_s", "time/logprobs_s", "time/train_s", "time/iteration_s")


def worker(recipe: str, overrides: list[str], iterations: int) -> None:
    """Run the iterations here; one JSON line per iteration on stdout (prefix `ITER `)."""
    import torch

    from vzero_nemo.cli import build_config
    from vzero_nemo.training.loop import setup_trainer
    from vzero_nemo.training.trainer import run_iteration

    with tempfile.TemporaryDirectory(prefix="vzero_bench_iter_") as run_dir:
        fixed = [f"logging.dir={run_dir}", "checkpoint.resume=never", "logging.wandb_mode=disabled"]
        cfg = build_config(recipe, [*overrides, *fixed])
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        trainer = setup_trainer(cfg)
        for _ in range(iterations):
            cpu = time.process_time()
            metrics = run_iteration(trainer).metrics
            record = {k: round(float(metrics[k]), 4) for k in SHOWN}
            record["cpu_s"] = round(time.process_time() - cpu, 4)
            record["accuracy"] = round(float(metrics["game/decision_accuracy"]), 4)
            record["loss"] = float(metrics.get("train/loss", float("nan")))
            print("ITER " + json.dumps(record), flush=True)


def run_checkout(checkout: Path, args, overrides: list[str], show: bool) -> list[dict]:
    """This file as a process with `checkout` first on the path; its iteration records
    (`show`: print the rest of its output, e.g. profile tables)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, str(HERE), "--worker", "--recipe", args.recipe]
    cmd += ["--iterations", str(args.iterations), *overrides]
    out = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{checkout}: exit {out.returncode}\n{out.stderr[-3000:]}")
    if show:
        print("\n".join(line for line in out.stdout.splitlines() if not line.startswith("ITER")))
    return [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("ITER ")]


def summarize(name: str, records: list[dict]) -> dict[str, float]:
    """Medians over the iterations after the first, printed with every iteration."""
    for i, r in enumerate(records):
        split = " ".join(f"{k.split('/')[1]} {r[k]:.2f}" for k in SHOWN)
        print(
            f"  {name} iteration {i + 1}: cpu {r['cpu_s']:.2f} s, {split}, "
            f"accuracy {r['accuracy']:.3f}, loss {r['loss']:.6f}"
        )
    timed = records[1:] or records
    keys = ("cpu_s", *SHOWN)
    return {k: statistics.median(r[k] for r in timed) for k in keys}


def main(argv: list[str] | None = None) -> dict:
    from vzero_nemo.cli import add_config_arguments, config_from_argv

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.bench.iteration")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--iterations", type=int, default=4, help="per run (first: warm-up)")
    parser.add_argument("--against", type=Path, default=None, help="other checkout to compare")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per checkout")
    parser.add_argument("--profile", action="store_true", help="profile tables of this checkout")
    parser.add_argument("--json", type=Path, default=None, help="write the medians here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, _ = config_from_argv(parser, argv)  # a bad override fails here, exit 2
    if args.iterations < 1 or args.rounds < 1:
        parser.error(f"--iterations {args.iterations} and --rounds {args.rounds} must be >= 1")
    if args.worker:
        worker(args.recipe, args.overrides, args.iterations)
        return {}
    checkouts = {"this": REPO}
    if args.against is not None:
        checkouts["against"] = args.against.resolve()
    medians: dict[str, list[dict]] = {name: [] for name in checkouts}
    for round_index in range(args.rounds):
        for name, checkout in checkouts.items():
            print(f"round {round_index + 1}, {name} ({checkout}):", flush=True)
            profile = args.profile and name == "this"
            overrides = [*args.overrides, "train.profile=true"] if profile else args.overrides
            records = run_checkout(checkout, args, overrides, show=profile)
            medians[name].append(summarize(name, records))
    result = {name: runs for name, runs in medians.items()}
    if "against" in medians:
        ratios = [
            {k: this[k] / other[k] for k in this}
            for this, other in zip(medians["this"], medians["against"])
        ]
        result["ratio_this_over_against"] = ratios
        for i, ratio in enumerate(ratios):
            shown = ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
            print(f"round {i + 1}: this / against (median of iterations 2..): {shown}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
