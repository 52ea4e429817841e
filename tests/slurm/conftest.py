"""A real local Slurm cluster (2 nodes, 8 fake GPUs each) for the `slurm` tier.

    .venv/bin/python -m pytest -m slurm tests/slurm -q

The session fixture `slurm_cluster` runs `scripts/local_slurm.sh up` in a temporary directory
on free loopback ports and `down` at the end. The tier is skipped only when Slurm is missing
and apt-get cannot install it (the script's exit status 3); any other start-up failure is an
error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm._cluster import LOCAL_SLURM, REPO, SlurmCluster, free_port_base


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    # Not pytest's tmp_path: its parents are private to root, and munged runs as user munge.
    cluster_dir = Path(tempfile.mkdtemp(prefix="vzero-slurm-", dir="/tmp"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLURM_", "VZERO_", "SBATCH_", "SRUN_"))
    }
    env.update(
        VZERO_SLURM_DIR=str(cluster_dir),
        VZERO_SLURM_PORT=str(free_port_base()),
        SLURM_CONF=str(cluster_dir / "etc" / "slurm.conf"),
        VZERO_ROOT=str(REPO),
        WANDB_MODE="offline",
        OMP_NUM_THREADS="1",
    )
    up = subprocess.run(
        ["bash", str(LOCAL_SLURM), "up"], env=env, capture_output=True, text=True, timeout=900
    )
    if up.returncode == 3:
        pytest.skip(f"Slurm is not installed and apt-get could not install it: {up.stderr.strip()}")
    cluster = SlurmCluster(dir=cluster_dir, env=env)
    try:
        assert up.returncode == 0, f"local_slurm.sh up failed:\n{up.stderr}"
        yield cluster
    finally:
        down = subprocess.run(
            ["bash", str(LOCAL_SLURM), "down"], env=env, capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, f"local_slurm.sh down failed:\n{down.stderr}"
        shutil.rmtree(cluster_dir, ignore_errors=True)
