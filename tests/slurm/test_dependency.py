"""(b) A job whose dependency failed is reported as failed, not as success.

    .venv/bin/python -m pytest -m slurm tests/slurm/test_dependency.py -q

`sbatch --wait` exits 0 for a job that Slurm cancels because its `afterok` dependency failed,
so a pipeline (data preparation -> training) must read every job's final state. This test
runs such a chain and checks what `scontrol -o show job` and `scripts/local_slurm.sh wait`
report.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm._cluster import LOCAL_SLURM, REPO, SlurmCluster

pytestmark = pytest.mark.slurm


def _job_id_by_name(cluster: SlurmCluster, name: str, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = cluster.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i").stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.2)
    raise TimeoutError(f"no job named {name}")


def test_failed_dependency_is_reported_as_failure(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = {
        **slurm_cluster.env,
        "VZERO_RUN_DIR": str(tmp_path / "run"),
        "VZERO_DATA_DIR": str(tmp_path),
    }
    output = f"--output={tmp_path}/%x-%j.out"
    # Held, so the dependent job is submitted while its dependency is still pending.
    first = slurm_cluster.sbatch(
        "slurm/vzero_tiny_cpu.sh",
        options=("--nodes=1", output, "--hold"),
        env={**env, "VZERO_DATA_DIR": str(tmp_path / "missing")},  # fails before any work
    )
    name = f"after-{uuid.uuid4().hex[:8]}"
    waiting = subprocess.Popen(
        ["sbatch", "--wait", "--nodes=1", output, f"--job-name={name}"]
        + [f"--dependency=afterok:{first}", "slurm/vzero_tiny_cpu.sh", "--dry-run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        second = _job_id_by_name(slurm_cluster, name)
        assert slurm_cluster.run("scontrol", "release", str(first)).returncode == 0
        waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()

    first_info = slurm_cluster.wait_final(first)
    second_info = slurm_cluster.wait_final(second)
    assert (first_info["JobState"], first_info["ExitCode"]) == ("FAILED", "1:0"), first_info
    # kill_invalid_depend: cancelled at once instead of pending forever; it never started.
    assert second_info["JobState"] == "CANCELLED", second_info
    assert second_info["Reason"] == "DependencyNeverSatisfied", second_info
    assert second_info["StartTime"] == "Unknown", second_info
    assert not list(tmp_path.glob(f"*-{second}.out"))
    # Whatever `sbatch --wait` returned (0 on Slurm 22.05), the wait helper reports failure.
    report = slurm_cluster.run("bash", LOCAL_SLURM, "wait", str(first), str(second))
    assert report.returncode == 1, report
    assert report.stdout.splitlines() == [
        f"{first} FAILED NonZeroExitCode 1:0 0",
        f"{second} CANCELLED DependencyNeverSatisfied 0:0 0",
    ], report.stdout
