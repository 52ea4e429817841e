"""Client side of the local Slurm cluster used by the `slurm` tier (see conftest.py).

    from tests.slurm._cluster import SlurmCluster
    job_id = cluster.sbatch("slurm/vzero_tiny_cpu.sh", "--dry-run", options=("--nodes=1",))
    info = cluster.wait_final(job_id)          # {'JobState': 'COMPLETED', 'ExitCode': '0:0', ...}

Final states come from `scontrol -o show job` (no slurmdbd, so no sacct), never from
`sbatch --wait`, which exits 0 for a job cancelled because its dependency failed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL_SLURM = REPO / "scripts" / "local_slurm.sh"
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def free_port_base(count: int = 3) -> int:
    """A port P such that P .. P+count-1 are free on loopback now."""
    for base in range(16817, 30000, 10):
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range for the local Slurm cluster")


def parse_job(line: str) -> dict[str, str]:
    """Fields of one `scontrol -o show job` line ({'JobState': 'FAILED', ...})."""
    return dict(re.findall(r"(\w+)=(\S*)", line))


@dataclass
class SlurmCluster:
    dir: Path
    env: dict[str, str]

    def run(
        self, *cmd: str | os.PathLike, timeout_s: float = 60, **kwargs
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(c) for c in cmd],
            env=kwargs.pop("env", self.env),
            cwd=kwargs.pop("cwd", REPO),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            **kwargs,
        )

    def sbatch(
        self,
        script: str,
        *args: str,
        options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> int:
        """Submit `script args...` (argv words passed as a list, no shell) and return the job id."""
        job_env = {**self.env, **(env or {})}
        result = self.run("sbatch", "--parsable", *options, script, *args, env=job_env)
        assert result.returncode == 0, f"sbatch failed: {result.stderr}"
        return int(result.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        result = self.run("scontrol", "-o", "show", "job", str(job_id))
        assert result.returncode == 0, f"scontrol show job {job_id}: {result.stderr}"
        return parse_job(result.stdout)

    def wait_final(self, job_id: int, timeout_s: float = 120) -> dict[str, str]:
        """Poll until the job is in a final state; return its fields."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.job(job_id)
            if info["JobState"] in FINAL_STATES:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {info['JobState']} after {timeout_s} s")
            time.sleep(0.5)

    def wait_state(self, job_id: int, state: str, timeout_s: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.job(job_id)
            if info["JobState"] == state:
                return info
            if info["JobState"] in FINAL_STATES or time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {info['JobState']}, waited for {state}")
            time.sleep(0.2)
