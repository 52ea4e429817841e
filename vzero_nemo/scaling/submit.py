"""Submit a grid of runs (nodes x TP/PP layouts x override values) as Slurm jobs.

    python -m vzero_nemo.scaling submit --recipe qwen25vl_72b_8n8g --runs-dir /lustre/sweep \\
        --nodes 8,16 --layouts 8x4,8x2 --vary train.micro_batch_size=1,2 train.iterations=10

Each grid point is one job of the recipe's own sbatch script (`slurm/vzero_*.sh`, the same
launcher, requeue and logs as a single run; `--script` picks another) with `--nodes=N` and
`VZERO_RUN_DIR=<runs-dir>/<run name>`, so the trainer writes its `config.json`,
`metrics.jsonl` and `run_state.json` there; the sweep adds `sweep.json` (what was asked:
recipe, nodes, layout, overrides, job id) next to them. Every point's config is built
(`vzero_nemo.cli.build_config`) at its world size before anything is submitted: a point
megatron cannot run (TP x PP not dividing the GPUs, ...) is recorded as `invalid` with the
reason, not submitted and not dropped. `--wait` polls `scontrol` until every job ends and
records its final state (`slurm_state.json`); `python -m vzero_nemo.scaling collect` reads it.

Why plain sbatch and not NeMo-Run's Slurm executor: `nemo-run` is not in the pinned stack,
and the project's sbatch scripts already carry the container mounts, the USR1 save-and-requeue
and the per-restart logs that a sweep's long runs need.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vzero_nemo.cli import build_config

SCRIPTS = {
    "tiny_cpu": "slurm/vzero_tiny_cpu.sh",
    "tiny_cpu_long": "slurm/vzero_tiny_cpu.sh",
    "qwen25vl_7b_1n8g": "slurm/vzero_7b.sh",
    "qwen25vl_32b_4n8g": "slurm/vzero_32b.sh",
    "qwen25vl_72b_8n8g": "slurm/vzero_70b.sh",
}
FINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "PREEMPTED",
}  # fmt: skip


@dataclass(kw_only=True)
class RunSpec:
    name: str
    recipe: str
    script: str
    nodes: int
    procs_per_node: int
    tp: int
    pp: int
    overrides: list[str]
    """Common overrides, then this point's `--vary` values, then its layout."""
    job_id: int | None = None
    invalid: str | None = None
    """Why the point was not submitted."""
    submitted_at: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}={text!r} must be comma-separated integers, e.g. 1,2,4") from None
    if not values or min(values) < 1:
        raise ValueError(f"{flag}={text!r} must list positive integers")
    return values


def parse_layouts(text: str) -> list[tuple[int, int]]:
    """'8x4,8x2' -> [(8, 4), (8, 2)] (TP x PP)."""
    out = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)x(\d+)\s*", item)
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise ValueError(f"--layouts item {item!r} must look like TPxPP, e.g. 8x4")
        out.append((int(match.group(1)), int(match.group(2))))
    return out


def parse_vary(items: Sequence[str]) -> list[list[str]]:
    """['a=1,2', 'b=x,y'] -> the cartesian product as override lists."""
    axes = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"--vary {item!r} must look like key=v1,v2")
        key, values = item.split("=", 1)
        axes.append([f"{key}={v}" for v in values.split(",") if v != ""])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def _slug(words: Sequence[str]) -> str:
    """'data.path=/a/clevr train.lr=1e-5' -> 'path_clevr-lr_1e-5' (last key part, last path part)."""
    parts = []
    for word in words:
        key, _, value = word.partition("=")
        parts.append(f"{key.split('.')[-1]}_{value.rstrip('/').split('/')[-1]}")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))[:60]


def plan_grid(
    recipe: str,
    nodes: list[int],
    layouts: list[tuple[int, int]] | None,
    vary: list[list[str]],
    common: list[str],
    procs_per_node: int,
    script: str | None,
) -> list[RunSpec]:
    """Every grid point, validated (see the module docstring). A bad key or value in the
    overrides raises ValueError (nothing is submitted); a point whose layout cannot run on
    its GPUs is kept, marked invalid."""
    for values in vary:  # keys and types: the recipe at its own shape
        build_config(recipe, [*common, *values], "launch")
    if layouts is None:  # the recipe's own TP x PP
        own = build_config(recipe, common, "launch").parallel
        layouts = [(own.tensor_model_parallel_size, own.pipeline_model_parallel_size)]
    specs = []
    for index, (n, (tp, pp), values) in enumerate(itertools.product(nodes, layouts, vary)):
        layout = [
            f"parallel.tensor_model_parallel_size={tp}",
            f"parallel.pipeline_model_parallel_size={pp}",
        ]
        spec = RunSpec(
            name=f"{index:02d}-n{n}-tp{tp}pp{pp}" + (f"-{_slug(values)}" if values else ""),
            recipe=recipe,
            script=script or SCRIPTS.get(recipe, "slurm/vzero_tiny_cpu.sh"),
            nodes=n,
            procs_per_node=procs_per_node,
            tp=tp,
            pp=pp,
            overrides=[*common, *values, *layout],
            extra={"vary": values},
        )
        try:
            build_config(recipe, spec.overrides, spec.world_size)
        except ValueError as err:
            spec.invalid = str(err)
        specs.append(spec)
    return specs


def write_spec(runs_dir: Path, spec: RunSpec) -> Path:
    run_dir = runs_dir / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "sweep.json").write_text(json.dumps(asdict(spec), indent=2))
    return run_dir


def submit(
    spec: RunSpec, runs_dir: Path, sbatch_args: Sequence[str], env: dict[str, str] | None = None
) -> None:
    """sbatch one valid grid point (its run directory gets the trainer's files)."""
    run_dir = (runs_dir / spec.name).resolve()
    job_env = dict(os.environ if env is None else env)
    job_env.update(
        VZERO_RUN_DIR=str(run_dir),
        VZERO_RECIPE=spec.recipe,
        VZERO_NPROC_PER_NODE=str(spec.procs_per_node),
    )
    cmd = [
        "sbatch", "--parsable", f"--nodes={spec.nodes}", f"--job-name=scaling-{spec.name}",
        f"--output={run_dir}/slurm-%j.out", *sbatch_args, spec.script, *spec.overrides,
    ]  # fmt: skip
    result = subprocess.run(cmd, env=job_env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        spec.invalid = f"sbatch refused the job: {result.stderr.strip()}"
        return
    spec.job_id = int(result.stdout.strip().split(";")[0])
    spec.submitted_at = time.time()


def job_state(job_id: int, env: dict[str, str] | None = None) -> dict[str, str] | None:
    """`scontrol -o show job` fields, or None when Slurm no longer knows the job."""
    result = subprocess.run(
        ["scontrol", "-o", "show", "job", str(job_id)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 or "JobState=" not in result.stdout:
        return None
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout))


def wait_for(
    specs: Sequence[RunSpec], runs_dir: Path, timeout_s: float, poll_s: float = 2.0
) -> None:
    """Poll until every submitted job is final; record each final state in its run dir."""
    pending = {s.job_id: s for s in specs if s.job_id is not None}
    deadline = time.monotonic() + timeout_s
    while pending:
        for job_id, spec in list(pending.items()):
            info = job_state(job_id)
            state = info.get("JobState") if info else "UNKNOWN"
            if state in FINAL_STATES or info is None:
                record = {"JobState": state, "ExitCode": (info or {}).get("ExitCode", "?")}
                (runs_dir / spec.name / "slurm_state.json").write_text(json.dumps(record))
                del pending[job_id]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"jobs {sorted(pending)} still running after {timeout_s} s")
        if pending:
            time.sleep(poll_s)
