"""Helpers of the learning tier: quiet `python -m` runs of the tiny recipe with 2 threads."""

from __future__ import annotations

import json
import subprocess
import sys

from tiny_run import ROOT, env


def run(cmd: list[str], timeout_s: int) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(threads=2), timeout=timeout_s)


def train(run_dir, *overrides: str, timeout_s: int = 1800) -> None:
    """`python -m vzero_nemo.train --recipe tiny_cpu` into `run_dir`, quiet."""
    run([
        sys.executable, "-m", "vzero_nemo.train", "--recipe", "tiny_cpu",
        f"logging.dir={run_dir}", "logging.wandb_mode=disabled", "logging.progress_bar=false",
        *overrides,
    ], timeout_s)  # fmt: skip


def records(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
