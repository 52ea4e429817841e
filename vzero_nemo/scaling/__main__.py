"""Scaling sweeps on Slurm: submit a grid of runs, then collect them into a table and plots.

    python -m vzero_nemo.scaling submit --recipe qwen25vl_72b_8n8g --runs-dir /lustre/sweep \\
        --nodes 8,16 --layouts 8x4,8x2 --vary train.micro_batch_size=1,2 train.iterations=10
    python -m vzero_nemo.scaling submit --recipe tiny_cpu --runs-dir runs/sweep --nodes 1,2 \\
        --procs-per-node 1 --wait data.path=runs/tiny_cpu/data train.iterations=3
    python -m vzero_nemo.scaling collect runs/sweep          # scaling.csv / .md / .png
    python -m vzero_nemo.scaling sizes --out runs/sizes --sizes tiny_s,tiny,tiny_l --seeds 0,1 \
        data.path=runs/tiny_cpu/data pretrain.steps=300 train.iterations=20

`submit` (see `vzero_nemo.scaling.submit`): grid = nodes x layouts (TPxPP; default the
recipe's own) x `--vary key=v1,v2` values; positional `key=value` words go to every run;
`--sbatch-arg` passes options to every sbatch (e.g. `--sbatch-arg=--time=02:00:00`).
`collect` (see `vzero_nemo.scaling.collect`): one row per grid point, failed and invalid
points included. `sizes` (see `vzero_nemo.scaling.sizes`): the main job at several model
sizes and seeds on CPU, tabulated the same way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vzero_nemo.cli import add_config_arguments, configure_logs, fail
from vzero_nemo.scaling import collect as col
from vzero_nemo.scaling import sizes
from vzero_nemo.scaling import submit as sub


def _submit(args: argparse.Namespace) -> int:
    try:
        nodes = sub.parse_ints(args.nodes, "--nodes")
        layouts = sub.parse_layouts(args.layouts) if args.layouts else None
        vary = sub.parse_vary(args.vary)
        specs = sub.plan_grid(
            args.recipe, nodes, layouts, vary, args.overrides, args.procs_per_node, args.script
        )
    except ValueError as err:
        fail(str(err))
    runs_dir = Path(args.runs_dir)
    if any(spec.invalid is None for spec in specs) and shutil.which("sbatch") is None:
        fail(
            "sbatch is not on PATH; submit from a Slurm login node (locally: scripts/local_slurm.sh up)"
        )
    for spec in specs:
        if spec.invalid is None:
            sub.submit(spec, runs_dir, args.sbatch_arg)
        sub.write_spec(runs_dir, spec)
        what = f"job {spec.job_id}" if spec.job_id else f"NOT submitted: {spec.invalid}"
        print(f"{spec.name}: {spec.world_size} processes, {what}")
    if args.wait:
        sub.wait_for(specs, runs_dir, args.timeout_s)
        print(f"all jobs ended; collect with: python -m vzero_nemo.scaling collect {runs_dir}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    try:
        rows = col.collect(Path(args.runs_dir))
    except ValueError as err:
        fail(str(err))
    paths = col.write_outputs(rows, Path(args.out or args.runs_dir))
    print(col.markdown(rows))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.scaling", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("submit", help="submit a grid of runs as Slurm jobs")
    add_config_arguments(s, default_recipe=None)
    s.add_argument("--runs-dir", required=True, help="one sub-directory per grid point")
    s.add_argument("--nodes", required=True, help="comma-separated node counts, e.g. 1,2,4")
    s.add_argument("--layouts", help="comma-separated TPxPP, e.g. 8x4,8x2 (default: recipe's)")
    s.add_argument("--vary", action="append", default=[], help="key=v1,v2 (repeatable)")
    s.add_argument("--procs-per-node", type=int, default=8, help="processes (GPUs) per node")
    s.add_argument("--script", help="sbatch script (default: the recipe's slurm/vzero_*.sh)")
    s.add_argument("--sbatch-arg", action="append", default=[], help="extra sbatch option")
    s.add_argument("--wait", action="store_true", help="wait until every job has ended")
    s.add_argument("--timeout-s", type=float, default=24 * 3600, help="--wait limit")
    z = commands.add_parser("sizes", help="model-size study on CPU (main job per size, seed)")
    z.add_argument("--out", required=True, help="one directory per size and seed")
    z.add_argument("--sizes", default="tiny_s,tiny,tiny_l", help="model.size values")
    z.add_argument("--seeds", default="0,1", help="train.seed values (the first pre-trains)")
    z.add_argument("--collect-only", action="store_true", help="only tabulate finished runs")
    z.add_argument("--table-dir", help="where sizes.csv/.md/.png go (default: --out)")
    z.add_argument("overrides", nargs="*", help="key=value for every run (e.g. data.path=...)")
    c = commands.add_parser("collect", help="CSV, markdown table and plots of a sweep")
    c.add_argument("runs_dir")
    c.add_argument("--out", help="output directory (default: RUNS_DIR)")
    args = parser.parse_args(argv)
    if args.command == "submit":
        configure_logs(args)
        return _submit(args)
    if args.command == "sizes":
        try:
            return sizes.study(args, args.overrides)
        except ValueError as err:
            fail(str(err))
    return _collect(args)


if __name__ == "__main__":
    sys.exit(main())
