"""Turn a sweep's run directories into a CSV, a markdown table and plots.

    python -m vzero_nemo.scaling collect RUNS_DIR [--out DIR]

One row per grid point (every `sweep.json`), whatever happened to it:
- status: `completed` (Slurm COMPLETED and run_state.json complete), `failed` (any other final
  Slurm state or an incomplete run; the job's exit code and the last `error:` line of its
  log are kept), `invalid` (not submitted: the reason), `running` / `pending`, or `unknown`
  when Slurm no longer knows a job that left no final state behind;
- time per iteration and its split (rollout / reference log-probs / training), the mean over
  logged iterations after the first (the first compiles and warms caches; with one
  iteration, that one);
- throughput: games per second of the whole job and generated tokens/s per GPU;
- scaling efficiency: games/s per GPU relative to the smallest completed GPU count of the
  same layout and overrides (1.0 = linear scaling);
- memory per GPU: the planner's peak for the point's resolved config (the trainer does not
  measure it; `python -m vzero_nemo.plan` explains the number).
Writes `scaling.csv`, `scaling.md` and `scaling.png` (throughput, efficiency and memory
against the GPU count) into `--out` (default RUNS_DIR).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from vzero_nemo.cli import build_config
from vzero_nemo.scaling.submit import FINAL_STATES, job_state

COLUMNS = (
    "name", "recipe", "nodes", "gpus", "tp", "pp", "dp", "vary", "status", "job_id", "exit_code",
    "error", "iterations", "iteration_s", "rollout_s", "logprobs_s", "train_s", "games_per_s",
    "generated_tokens_per_s_per_gpu", "scaling_efficiency", "planned_peak_gib",
)  # fmt: skip


def _last_error(run_dir: Path) -> str:
    lines: list[str] = []
    for log in sorted(run_dir.glob("slurm-*.out")) + sorted(run_dir.glob("logs/*.log")):
        lines += [line.strip() for line in log.read_text(errors="replace").splitlines()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line]
    return errors[-1][:300] if errors else ""


def run_status(run_dir: Path, spec: dict[str, Any]) -> tuple[str, str]:
    """(status, Slurm exit code) of one grid point (see the module docstring)."""
    if spec.get("invalid"):
        return "invalid", ""
    state_file, run_state = run_dir / "slurm_state.json", run_dir / "run_state.json"
    if state_file.exists():
        record = json.loads(state_file.read_text())
    else:
        record = job_state(spec["job_id"]) or {"JobState": "UNKNOWN", "ExitCode": "?"}
    state, exit_code = record.get("JobState", "UNKNOWN"), record.get("ExitCode", "?")
    complete = run_state.exists() and json.loads(run_state.read_text()).get("complete") is True
    if state == "COMPLETED":
        return ("completed" if complete else "failed"), exit_code
    if state in FINAL_STATES:
        return "failed", exit_code
    if state == "UNKNOWN":
        return ("completed" if complete else "unknown"), exit_code
    return state.lower(), exit_code


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return sum(values) / len(values) if values else math.nan


def summarize(run_dir: Path) -> dict[str, Any]:
    spec = json.loads((run_dir / "sweep.json").read_text())
    status, exit_code = run_status(run_dir, spec)
    gpus = spec["nodes"] * spec["procs_per_node"]
    row: dict[str, Any] = {
        "name": spec["name"], "recipe": spec["recipe"], "nodes": spec["nodes"], "gpus": gpus,
        "tp": spec["tp"], "pp": spec["pp"], "dp": gpus // (spec["tp"] * spec["pp"]) or "",
        "vary": " ".join(spec["extra"].get("vary", [])), "status": status,
        "job_id": spec.get("job_id") or "", "exit_code": exit_code,
        "error": spec.get("invalid") or ("" if status == "completed" else _last_error(run_dir)),
    }  # fmt: skip
    records = _metrics(run_dir)
    timed = records[1:] if len(records) > 1 else records
    row["iterations"] = len(records)
    for key, metric in (
        ("iteration_s", "time/iteration_s"),
        ("rollout_s", "time/rollout_s"),
        ("logprobs_s", "time/logprobs_s"),
        ("train_s", "time/train_s"),
    ):
        row[key] = _mean(timed, metric)
    generated = [r["perf/rollout_tokens_per_s"] * r["time/rollout_s"] for r in timed]
    games = _mean(timed, "game/games")
    row["games_per_s"] = games / row["iteration_s"] if timed else math.nan
    row["generated_tokens_per_s_per_gpu"] = (
        sum(generated) / len(generated) / row["iteration_s"] / gpus if timed else math.nan
    )
    row["planned_peak_gib"] = _planned_peak(spec) if not spec.get("invalid") else math.nan
    return row


def _planned_peak(spec: dict[str, Any]) -> float:
    from vzero_nemo.plan import plan_config

    cfg = build_config(spec["recipe"], spec["overrides"], spec["nodes"] * spec["procs_per_node"])
    return plan_config(cfg).memory.peak_bytes / 2**30


def add_efficiency(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["tp"], row["pp"], row["vary"]), []).append(row)
    for members in groups.values():
        done = [r for r in members if r["status"] == "completed" and r["games_per_s"] > 0]
        base = min(done, key=lambda r: r["gpus"]) if done else None
        for r in members:
            r["scaling_efficiency"] = (
                (r["games_per_s"] / r["gpus"]) / (base["games_per_s"] / base["gpus"])
                if base is not None and r in done
                else math.nan
            )


def collect(runs_dir: Path) -> list[dict[str, Any]]:
    specs = sorted(runs_dir.glob("*/sweep.json"))
    if not specs:
        raise ValueError(f"{runs_dir} holds no */sweep.json; is it a sweep's --runs-dir?")
    rows = [summarize(path.parent) for path in specs]
    add_efficiency(rows)
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return str(value).replace("|", "/")


def markdown(rows: list[dict[str, Any]]) -> str:
    shown = (
        "name", "gpus", "tp", "pp", "dp", "vary", "status", "exit_code", "iterations",
        "iteration_s", "rollout_s", "logprobs_s", "train_s", "games_per_s",
        "generated_tokens_per_s_per_gpu", "scaling_efficiency", "planned_peak_gib", "error",
    )  # fmt: skip
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in shown) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "completed":
            groups.setdefault(f"TP{r['tp']} PP{r['pp']} {r['vary']}".strip(), []).append(r)
    for label, members in groups.items():
        members.sort(key=lambda r: r["gpus"])
        gpus = [r["gpus"] for r in members]
        axes[0].plot(gpus, [r["games_per_s"] for r in members], "o-", label=label)
        axes[1].plot(gpus, [r["scaling_efficiency"] for r in members], "o-", label=label)
        axes[2].plot(gpus, [r["planned_peak_gib"] for r in members], "o-", label=label)
    for ax, title in zip(
        axes,
        (
            "throughput (games/s)",
            "scaling efficiency (per GPU vs smallest)",
            "planned memory per GPU (GiB)",
        ),
    ):
        ax.set_xlabel("GPUs (processes)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    if groups:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / "scaling.csv",
        "md": out_dir / "scaling.md",
        "png": out_dir / "scaling.png",
    }
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown(rows))
    plot(rows, paths["png"])
    return paths
