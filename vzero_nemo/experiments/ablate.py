"""Ablations of the stage schedule and of Role-Advantage Estimation, as one command.

    python -m vzero_nemo.experiments.ablate --pretrained runs/tiny_cpu/pretrained \\
        --out runs/ablate --iterations 40 --seeds 0 1 [--rows iterative,rae_off] \\
        data.path=runs/tiny_cpu/data [key=value ...]

Every row starts from the same pre-trained weights and plays the same data; each (row, seed)
is one `python -m vzero_nemo.train` run (`train.seed=SEED`) followed by two held-out
evaluations of its final weights (`python -m vzero_nemo.eval.heldout`: the model's own clues,
and scripted oracle clues), all on the same `eval.games` games. Rows:

    iterative       the recipe: Iterative-SPO with its thresholds (RAE alpha as the recipe)
    decision_only   decision stage only (GRPO on votes; the clue stage never trains)
    clue_only       clue stage only (RAE on clues; the votes never train)
    alternate       switch every iteration (`spo.schedule=alternate`, the official code)
    rae_off         Iterative-SPO, clue advantages = raw rewards (`grpo.rae_subtract=none`)
    rae_0.9 / rae_0.95 / rae_0.99   Iterative-SPO with that RAE EMA factor (the default
                    rows leave out the one equal to the recipe's, which `iterative` already is)
    clue_reward_x10 Iterative-SPO with the clue rewards' beta = lambda = 1.0 (paper 0.1): the
                    clue stage's signal ten times larger next to the fixed KL penalty

Where a run enters a clue stage from the decision stage, its FIRST clue stage is also judged
against a frozen observer (`python -m vzero_nemo.eval.clue_eval`: the weights saved at the
decision -> clue switch vote on clues from the policy entering and leaving the stage), giving
the change of the spy's contradiction rate and of the frozen observer's accuracy that the
clue stage alone caused.

Resumable: a finished run (its `result.json`) is skipped and an interrupted training run
resumes from its checkpoint, so rerunning the same command continues where it stopped.
Several commands with disjoint `--rows` may share one `--out` (e.g. one per core);
`--report-only` then writes the table of everything finished. Writes
`<out>/ablation.md` (mean and spread over seeds per row, with the number of games) and
`<out>/ablation.png`. Extra `key=value` overrides reach every run and evaluation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from vzero_nemo.experiments.table import write_table
from vzero_nemo.training.stage_switches import clue_stage_eval_command, clue_stages

ROWS: dict[str, list[str]] = {
    "iterative": [],
    "decision_only": ["spo.start_stage=decision", "spo.min_dwell=1000000"],
    "clue_only": ["spo.start_stage=clue", "spo.min_dwell=1000000"],
    "alternate": ["spo.schedule=alternate"],
    "rae_off": ["grpo.rae_subtract=none"],
    "rae_0.9": ["grpo.rae_alpha=0.9"],
    "rae_0.95": ["grpo.rae_alpha=0.95"],
    "rae_0.99": ["grpo.rae_alpha=0.99"],
    "clue_reward_x10": ["grpo.beta=1.0", "grpo.lam=1.0"],
}
QUIET = ["logging.wandb_mode=disabled", "logging.progress_bar=false"]


def default_rows(recipe_alpha: float) -> list[str]:
    """Every row but the RAE-alpha row that repeats the recipe's own alpha."""
    return [row for row in ROWS if row != f"rae_{recipe_alpha:g}"]


def run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[2]} failed (exit {done.returncode}); see {log}")


def evaluate(weights: Path, out: Path, recipe: str, overrides: list[str], log: Path) -> dict:
    """Held-out metrics of `weights` with the model's own and with oracle clues."""
    metrics = {}
    for name, extra in (("own", []), ("oracle", ["rollout.clue_policy=oracle"])):
        path = out / f"eval_{name}.json"
        if not path.exists():
            run([sys.executable, "-m", "vzero_nemo.eval.heldout", "--recipe", recipe,
                 "--weights", str(weights), "--out", str(path), *overrides, *extra], log)  # fmt: skip
        metrics[name] = json.loads(path.read_text())["metrics"]
    return metrics


def evaluate_first_clue_stage(
    run_dir: Path, final: Path, recipe: str, overrides: list[str], log: Path
) -> dict | None:
    """`clue_eval` of the run's first clue stage entered from the decision stage: the
    metrics before and after it under the frozen observer, or None when there is none."""
    stages = clue_stages(run_dir / "checkpoints", final)
    if not stages:
        return None
    start, end = stages[0]
    path = run_dir / "clue_eval.json"
    if not path.exists():
        run(clue_stage_eval_command(recipe, start, end, path, overrides), log)
    before, after = json.loads(path.read_text())
    return {"before": before["metrics"], "after": after["metrics"], "observer": str(start)}


def train_and_evaluate(row: str, seed: int, args, overrides: list[str]) -> dict:
    run_dir = args.out / row / f"seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    log = run_dir / "log.txt"
    train = [
        sys.executable, "-m", "vzero_nemo.train", "--recipe", args.recipe,
        f"model.init_checkpoint={args.pretrained}", f"logging.dir={run_dir}",
        f"train.seed={seed}", f"train.iterations={args.iterations}",
        f"checkpoint.save_interval={max(1, args.iterations // 4)}", *QUIET, *overrides,
        *ROWS[row],
    ]  # fmt: skip
    start = time.monotonic()
    run(train, log)
    seconds = time.monotonic() - start
    final = run_dir / "checkpoints" / f"iter_{args.iterations:07d}" / "dist"
    metrics = evaluate(final, run_dir, args.recipe, overrides, log)
    row_overrides = [*overrides, *ROWS[row]]
    clue_stage = evaluate_first_clue_stage(run_dir, final, args.recipe, row_overrides, log)
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    result = {
        "row": row,
        "seed": seed,
        "eval": metrics,
        "clue_stage": clue_stage,
        "switches": records[-1]["spo/num_switches"],
        "clue_iterations": sum(r["stage"] == "clue" for r in records),
        "train_s": sum(r["time/iteration_s"] for r in records),
        "wall_s": seconds,
    }
    result_path.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.experiments.ablate")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--pretrained", type=Path, required=True, help="shared start weights")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", default=None, help=f"subset of {','.join(ROWS)}")
    parser.add_argument(
        "--report-only", action="store_true",
        help="write the table and figure from the runs finished so far, run nothing",
    )  # fmt: skip
    args, cfg = config_from_argv(parser, argv)  # checks the recipe and every override first
    rows = args.rows.split(",") if args.rows else default_rows(cfg.grpo.rae_alpha)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        fail(f"--rows: unknown {unknown}; choose from {list(ROWS)}")
    if not (args.pretrained / ".metadata").exists():
        fail(f"--pretrained {args.pretrained} is not a weights checkpoint (no .metadata)")
    if args.iterations < 1 or not args.seeds:
        fail("--iterations must be >= 1 and --seeds must name at least one seed")
    before = evaluate(args.pretrained, args.out / "pretrained", args.recipe, args.overrides,
                      args.out / "pretrained" / "log.txt")  # fmt: skip
    results = []
    for row in rows:
        for seed in args.seeds:
            done = args.out / row / f"seed{seed}" / "result.json"
            if args.report_only:
                results += [json.loads(done.read_text())] if done.exists() else []
                continue
            print(f"[ablate] {row} seed {seed}", flush=True)
            results.append(train_and_evaluate(row, seed, args, args.overrides))
    if not results:
        fail(f"no finished runs under {args.out}")
    command = "python -m vzero_nemo.experiments.ablate " + " ".join(argv or sys.argv[1:])
    write_table(results, before, args.out, command)
    print(f"[ablate] wrote {args.out / 'ablation.md'} and {args.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
