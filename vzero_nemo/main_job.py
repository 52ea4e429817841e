"""The tiny CPU recipe end to end: data -> pre-training -> self-play -> evaluation -> report.

    bash scripts/main_job.sh            # = python -m vzero_nemo.main_job (venv set up first)
    python -m vzero_nemo.main_job --long
    python -m vzero_nemo.main_job pretrain.steps=600 eval.games=64   # overrides reach every step

Steps (each a real entry point of the project, run as its own process, skipped when its
output already exists so an interrupted job continues where it stopped):
1. `python -m data_prep generate`: CLEVR grid pairs (48x48, 3x3 cells; 3-5 large rubber
   objects, whose shapes stay legible at 16 px; 2 of them edited in the spy image) into
   WebDataset shards with a train/val split;
2. `python -m vzero_nemo.training.pretrain`: the tiny VLM learns to describe objects, answer
   grounding questions and the answer format (never which player is the spy);
3. `python -m vzero_nemo.eval run --oracle-out` on the held-out split: the starting point,
   in MAIN_JOB_EVAL_GAMES games with the model's own clues (with the retention probes of the
   pre-training skills) and in `eval.games` games with scripted oracle clues (the observer
   alone), one process for both;
4. `python -m vzero_nemo.train --recipe tiny_cpu`: Iterative-SPO self-play from the
   pre-trained weights (the frozen reference is the same pre-trained model);
5. the same evaluation of the final policy (the same games);
6. `python -m vzero_nemo.eval.clue_eval` for the first two clue stages: the clues of the
   policy entering and leaving the stage, judged by the observer frozen as it entered (the
   weights saved at the decision -> clue switch), so the clue stage's own effect shows;
7. `python -m vzero_nemo.eval.report`: paired changes with intervals, curves, game viewer.
Outputs go to `runs/<recipe>/` (report.html, report.json, figures/, eval/, clue_eval_*.json,
metrics.jsonl, checkpoints). The terminal shows the steps' own progress; library warnings
and logs go to `runs/<recipe>/logs/main_job.log` (`--verbose` shows them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vzero_nemo import logs
from vzero_nemo.cli import add_config_arguments, config_from_argv
from vzero_nemo.training.stage_switches import clue_stage_eval_command, clue_stages

# The tiny data set: objects on the 3x3 grid of the tiny model's image tokens.
TINY_DATA_OPTIONS = (
    "layout=grid", "width=48", "height=48", "cell_size=16", "sizes=large",
    "materials=rubber", "min_objects=3", "max_objects=5",
)  # fmt: skip

MAIN_JOB_EVAL_GAMES = 512
"""Held-out games of the before/after evaluation with the model's own clues: the 250 held-out
pairs of the data set, each played about twice with other spy seats (intervals resample
pairs). A user's `eval.games=N` override still wins."""


def data_command(out: Path, num_pairs: int, seed: int, workers: int) -> list[str]:
    """`python -m data_prep generate` of the tiny data set (train + val split) into `out`."""
    options = [word for opt in TINY_DATA_OPTIONS for word in ("--opt", opt)]
    return [
        sys.executable, "-m", "data_prep", "generate", "--domain", "clevr",
        "--num-pairs", str(num_pairs), "--seed", str(seed), *options, "--out", str(out),
        "--pairs-per-shard", "50", "--val-fraction", "0.2", "--workers", str(workers),
        "--no-progress",
    ]  # fmt: skip


def evaluate_clue_stages(run_dir: Path, latest: str, recipe: str, common: list[str]) -> dict:
    """`vzero_nemo.eval.clue_eval` of the first two clue stages; returns their times."""
    times = {}
    final = run_dir / "checkpoints" / latest / "dist"
    for k, (start, end) in enumerate(clue_stages(run_dir / "checkpoints", final)[:2]):
        out = run_dir / f"clue_eval_{k + 1}.json"
        times[f"clue_eval_{k + 1}"] = run(
            f"clue stage {k + 1} against its frozen observer",
            clue_stage_eval_command(recipe, start, end, out, common),
        )
    return times


def evaluate_suite(
    label: str, weights: Path, run_dir: Path, recipe: str, common: list[str], oracle_games: int
) -> dict[str, float]:
    """One `python -m vzero_nemo.eval run --oracle-out` of `weights` (the model built once):
    the model's own clues (MAIN_JOB_EVAL_GAMES games, retention probes) into
    `<run>/eval/<label>` and scripted oracle clues (`oracle_games` games) into
    `<run>/eval/<label>_oracle`. A finished `before` pair of folders is kept (the pre-trained
    weights do not change); `after` always runs. Returns the step time."""
    out = run_dir / "eval" / label
    oracle = run_dir / "eval" / f"{label}_oracle"
    if label == "before" and all((d / "summary.json").exists() for d in (out, oracle)):
        return {}
    cmd = [
        sys.executable, "-m", "vzero_nemo.eval", "run", "--recipe", recipe,
        "--weights", str(weights), "--out", str(out), "--oracle-out", str(oracle),
        f"eval.games={MAIN_JOB_EVAL_GAMES}", f"eval.oracle_games={oracle_games}", *common,
    ]  # fmt: skip
    return {f"eval_{label}": run(f"eval {label}", cmd)}


def run(step: str, cmd: list[str]) -> float:
    print(f"\n[main] {step}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    elapsed = time.monotonic() - start
    print(f"[main] {step} took {elapsed:.0f} s", flush=True)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.main_job")
    parser.add_argument("--long", action="store_true", help="the longer learning run")
    parser.add_argument("--num-pairs", type=int, default=1200, help="pairs generated")
    parser.add_argument("--seed", type=int, default=0, help="data generation seed")
    add_config_arguments(parser, default_recipe=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--recipe" not in argv:  # --long picks the long recipe
        argv += ["--recipe", "tiny_cpu_long" if "--long" in argv else "tiny_cpu"]
    # Every step gets the same overrides, checked here once before any work starts.
    args, cfg = config_from_argv(parser, argv)
    recipe = args.recipe
    run_dir = Path(cfg.logging.dir)
    data = Path(cfg.data.path or run_dir / "data")
    pretrained = run_dir / "pretrained"
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    os.environ.setdefault("WANDB_MODE", "offline")
    py = sys.executable
    logs.configure(log_file=args.log_file or run_dir / "logs" / "main_job.log")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "command.txt").write_text(
        " ".join(["python -m vzero_nemo.main_job", *(argv or [])]) + "\n"
    )
    times: dict[str, float] = {}
    start = time.monotonic()

    if not (data / "manifest.json").exists():
        times["data"] = run(
            "data", data_command(data, args.num_pairs, args.seed, os.cpu_count() or 1)
        )
    common = [f"data.path={data}", *args.overrides]
    if not pretrained.exists():
        times["pretrain"] = run("pretrain", [
            py, "-m", "vzero_nemo.training.pretrain", "--recipe", recipe,
            "--out", str(pretrained), *common,
        ])  # fmt: skip
    # The oracle-clue suite keeps the recipe's (or the user's) eval.games.
    oracle_games = cfg.eval.oracle_games or cfg.eval.games
    times.update(evaluate_suite("before", pretrained, run_dir, recipe, common, oracle_games))
    times["self_play"] = run("self-play", [
        py, "-m", "vzero_nemo.train", "--recipe", recipe,
        f"model.init_checkpoint={pretrained}", *common,
    ])  # fmt: skip
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    final = run_dir / "checkpoints" / latest / "dist"
    times.update(evaluate_suite("after", final, run_dir, recipe, common, oracle_games))
    times.update(evaluate_clue_stages(run_dir, latest, recipe, common))
    run("report", [py, "-m", "vzero_nemo.eval.report", "--run", str(run_dir)])
    times["total"] = time.monotonic() - start
    (run_dir / "main_job_times.json").write_text(json.dumps(times, indent=1))
    print(f"\n[main] done in {times['total']:.0f} s; report: {run_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
