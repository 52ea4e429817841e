"""A scaling sweep through a real Slurm: submit a 4-run grid, wait, collect every run.

    .venv/bin/python -m pytest -m slurm tests/slurm/test_scaling_sweep.py -q
    VZERO_RESULTS_DIR=docs/results/sweep_local_slurm .venv/bin/python -m pytest -m slurm \
        tests/slurm/test_scaling_sweep.py -q     # also keeps the collected table and plot

Grid: nodes {1, 2} x data.path {real shards, a missing folder}, tiny recipe, 2 iterations.
The two runs with shards must complete and be measured (the 1-node run is the efficiency
baseline); the two without must be reported as failed with their error, not dropped.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_run import FAST

from tests.slurm._cluster import REPO, SlurmCluster

pytestmark = pytest.mark.slurm


def _run(cluster: SlurmCluster, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vzero_nemo.scaling", *args],
        env={**cluster.env, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True,
        timeout=timeout_s,
    )  # fmt: skip


def test_sweep_reports_every_run(slurm_cluster: SlurmCluster, tmp_path: Path, tiny_shards) -> None:
    runs = tmp_path / "sweep"
    missing = tmp_path / "missing"
    submit = _run(
        slurm_cluster, "submit", "--recipe", "tiny_cpu", "--runs-dir", str(runs),
        "--nodes", "1,2", "--procs-per-node", "1", "--vary", f"data.path={tiny_shards},{missing}",
        "--wait", "--timeout-s", "1200", "--sbatch-arg=--time=00:20:00",
        *FAST, "train.iterations=2", "checkpoint.save_interval=2",
        timeout_s=1500,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr[-3000:]
    collect = _run(slurm_cluster, "collect", str(runs), timeout_s=300)
    assert collect.returncode == 0, collect.stderr[-3000:]
    rows = {r["name"]: r for r in csv.DictReader((runs / "scaling.csv").open())}
    assert len(rows) == 4, rows.keys()
    table = (runs / "scaling.md").read_text()
    assert all(name in table for name in rows) and (runs / "scaling.png").stat().st_size > 0
    good = sorted((r for r in rows.values() if "missing" not in r["vary"]), key=lambda r: r["gpus"])
    bad = [r for r in rows.values() if "missing" in r["vary"]]
    assert [r["gpus"] for r in good] == ["1", "2"]
    for r in good:
        assert r["status"] == "completed" and r["iterations"] == "2", r
        assert float(r["games_per_s"]) > 0 and float(r["planned_peak_gib"]) > 0
    assert float(good[0]["scaling_efficiency"]) == 1.0
    assert 0 < float(good[1]["scaling_efficiency"]) < 2
    assert len(bad) == 2
    for r in bad:
        assert r["status"] == "failed" and r["exit_code"] != "0:0", r
        assert "is not a directory" in r["error"], r
    if os.environ.get("VZERO_RESULTS_DIR"):
        keep = Path(os.environ["VZERO_RESULTS_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("scaling.csv", "scaling.md", "scaling.png"):
            shutil.copy(runs / name, keep / name)
