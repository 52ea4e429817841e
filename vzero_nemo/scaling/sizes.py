"""Model-size study on CPU: the main job's recipe at several sizes, equal data and iterations.

    python -m vzero_nemo.scaling sizes --out runs/sizes --sizes tiny_s,tiny,tiny_l --seeds 0,1 \\
        data.path=runs/tiny_cpu/data pretrain.steps=300 train.iterations=20
    python -m vzero_nemo.scaling sizes --out runs/sizes --sizes tiny_s,tiny,tiny_l --seeds 0,1 \\
        --collect-only --table-dir docs/results

For each size (`model.size`: `tiny_s` / `tiny` / `tiny_l` are half / 1x / twice the tiny
language model's width and depth, same vision tower and tokenizer): one pre-training and one
held-out evaluation before self-play, shared by every seed; for each seed (`train.seed`):
self-play from those weights and the evaluation after it. Every step is the main job's own
(`python -m vzero_nemo.main_job`; later seeds start from a run directory holding the first
seed's pre-trained weights and evaluations, which the main job then skips). Same data
(`data.path`), same overrides, same iterations for every size.

Collected into `sizes.csv`, `sizes.md` and `sizes.png` (in `--table-dir`, default `--out`):
per size and seed the parameters, held-out decision accuracy before / after with the
model's own clues and with scripted oracle clues (the observer alone), the gain, the
pre-training and self-play times and the tokens generated in self-play; per size the mean
gain and its spread over seeds (min..max).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from vzero_nemo.cli import build_config
from vzero_nemo.models.sizes import dims_for, num_parameters, padded_vocab_size
from vzero_nemo.plan.job import PROJECT_VOCAB_TOKENS

SHARED = ("pretrained", "eval/before", "eval/before_oracle")
"""What later seeds take from the first: the pre-trained weights and their evaluations."""


def run_dir(out: Path, size: str, seed: int) -> Path:
    return out / size / f"seed{seed}"


def run_one(out: Path, size: str, seed: int, first_seed: int, overrides: list[str]) -> None:
    """The main job for (size, seed); later seeds reuse the first seed's pre-training."""
    target = run_dir(out, size, seed)
    if (target / "main_job_times.json").exists():
        return  # done earlier: a rerun continues where the study stopped
    target.mkdir(parents=True, exist_ok=True)
    if seed != first_seed:
        source = run_dir(out, size, first_seed)
        (target / "eval").mkdir(exist_ok=True)
        for name in SHARED:
            if (target / name).exists():
                continue
            if name == "pretrained":
                (target / name).symlink_to((source / name).resolve())
            else:
                shutil.copytree(source / name, target / name)
    cmd = [
        sys.executable, "-m", "vzero_nemo.main_job", "--recipe", "tiny_cpu",
        f"model.size={size}", f"train.seed={seed}", f"logging.dir={target}", *overrides,
    ]  # fmt: skip
    print(f"[sizes] {size} seed {seed}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "WANDB_MODE": "disabled"})


def _overall(eval_dir: Path, name: str) -> float:
    """`overall[name]` of a `python -m vzero_nemo.eval run` folder (nan when it has none)."""
    path = eval_dir / "summary.json"
    if not path.exists():
        return math.nan
    value = json.loads(path.read_text())["overall"][name]
    return float(value["value"] if isinstance(value, dict) else value)


def _accuracy(eval_dir: Path) -> float:
    """Held-out decision accuracy of a `python -m vzero_nemo.eval run` folder."""
    return _overall(eval_dir, "decision_accuracy")


def _generated_tokens(path: Path) -> float:
    if not path.exists():
        return math.nan
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(r["perf/rollout_tokens_per_s"] * r["time/rollout_s"] for r in records)


def _times(d: Path) -> dict[str, float]:
    path = d / "main_job_times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def summarize(out: Path, size: str, seed: int, first_seed: int) -> dict[str, Any]:
    d = run_dir(out, size, seed)
    times = _times(d)
    params = num_parameters(dims_for(size), padded_vocab_size(PROJECT_VOCAB_TOKENS))["total"]
    row = {
        "size": size, "seed": seed, "parameters": params,
        "status": "completed" if times else "missing",
        "before": _accuracy(d / "eval" / "before"), "after": _accuracy(d / "eval" / "after"),
        "before_oracle": _accuracy(d / "eval" / "before_oracle"),
        "after_oracle": _accuracy(d / "eval" / "after_oracle"),
        "games": _overall(d / "eval" / "after", "games"),
        "games_oracle": _overall(d / "eval" / "after_oracle", "games"),
        "pretrain_s": _times(run_dir(out, size, first_seed)).get("pretrain", math.nan),
        "self_play_s": times.get("self_play", math.nan),
        "generated_tokens": _generated_tokens(d / "metrics.jsonl"),
    }  # fmt: skip
    row["gain"] = row["after"] - row["before"]
    row["gain_oracle"] = row["after_oracle"] - row["before_oracle"]
    return row


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size: mean of each accuracy and gain over seeds, and the gain's min..max."""
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        done = [r for r in rows if r["size"] == size and r["status"] == "completed"]
        if not done:
            continue
        mean = {k: sum(r[k] for r in done) / len(done) for k in (
            "before", "after", "gain", "before_oracle", "after_oracle", "gain_oracle",
            "self_play_s", "generated_tokens",
        )}  # fmt: skip
        out.append({
            "size": size, "parameters": done[0]["parameters"], "seeds": len(done), **mean,
            "gain_min": min(r["gain"] for r in done), "gain_max": max(r["gain"] for r in done),
            "gain_oracle_min": min(r["gain_oracle"] for r in done),
            "gain_oracle_max": max(r["gain_oracle"] for r in done),
            "pretrain_s": done[0]["pretrain_s"],
        })  # fmt: skip
    return out


def _f(x: float, digits: int = 3) -> str:
    return "-" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def markdown(rows: list[dict[str, Any]], sizes: list[dict[str, Any]], command: str) -> str:
    games = sorted({_f(r["games"], 0) for r in rows if r["status"] == "completed"})
    oracle = sorted({_f(r["games_oracle"], 0) for r in rows if r["status"] == "completed"})
    lines = [
        "# Model-size study (CPU)",
        "",
        f"Made by `{command}`.",
        "",
        "Held-out decision accuracy (chance 0.25) before and after self-play, as the main job "
        f"evaluates it (own clues: the model plays every seat, {'/'.join(games)} games on the "
        "held-out pairs; oracle clues: scripted informative clues, the observer alone is "
        f"judged, {'/'.join(oracle)} games); the same games before and after; "
        "gain = after - before, mean over seeds with min..max.",
        "",
        "| size | parameters | seeds | before | after | gain (min..max) | oracle before | "
        "oracle after | oracle gain (min..max) | pre-train s | self-play s | tokens generated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sizes:
        lines.append(
            f"| {s['size']} | {s['parameters'] / 1e6:.2f}M | {s['seeds']} | {_f(s['before'])} | "
            f"{_f(s['after'])} | {s['gain']:+.3f} ({s['gain_min']:+.3f}..{s['gain_max']:+.3f}) | "
            f"{_f(s['before_oracle'])} | {_f(s['after_oracle'])} | {s['gain_oracle']:+.3f} "
            f"({s['gain_oracle_min']:+.3f}..{s['gain_oracle_max']:+.3f}) | "
            f"{s['pretrain_s']:.0f} | {s['self_play_s']:.0f} | {s['generated_tokens']:.0f} |"
        )
    lines += ["", "Per run:", "", "| size | seed | status | before | after | gain | oracle "
              "before | oracle after | oracle gain |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['seed']} | {r['status']} | {_f(r['before'])} | {_f(r['after'])} "
            f"| {_f(r['gain'])} | {_f(r['before_oracle'])} | {_f(r['after_oracle'])} | "
            f"{_f(r['gain_oracle'])} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (label, before, after) in zip(
        axes, (("own clues", "before", "after"), ("oracle clues", "before_oracle", "after_oracle"))
    ):
        done = [r for r in rows if r["status"] == "completed"]
        params = [r["parameters"] / 1e6 for r in done]
        ax.scatter(params, [r[before] for r in done], marker="x", color="grey", label="before")
        ax.scatter(
            params, [r[after] for r in done], marker="o", color="C0", label="after (each seed)"
        )
        ax.axhline(0.25, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("held-out decision accuracy")
        ax.set_title(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(rows, sizes, table_dir: Path, command: str) -> None:
    table_dir.mkdir(parents=True, exist_ok=True)
    with (table_dir / "sizes.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (table_dir / "sizes.md").write_text(markdown(rows, sizes, command))
    plot(rows, table_dir / "sizes.png")


def study(args, overrides: list[str]) -> int:
    sizes = [s for s in args.sizes.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for size in sizes:  # every point's config first: a bad size or override fails here
        build_config("tiny_cpu", [f"model.size={size}", *overrides], 1)
    out = Path(args.out)
    if not args.collect_only:
        for size in sizes:
            for seed in seeds:
                run_one(out, size, seed, seeds[0], overrides)
    rows = [summarize(out, size, seed, seeds[0]) for size in sizes for seed in seeds]
    per_size = aggregate(rows)
    command = "python -m vzero_nemo.scaling sizes " + " ".join(sys.argv[2:])
    write_outputs(rows, per_size, Path(args.table_dir or out), command)
    print(markdown(rows, per_size, command))
    return 0
