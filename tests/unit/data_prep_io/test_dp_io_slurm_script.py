"""slurm/data_prep.sh in its array-task and finalize modes, run the way Slurm runs it (the
environment Slurm sets, no scheduler needed): ranges cover the set, reruns are safe, the last
task finalizes. Submitting through sbatch belongs to the slurm tier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.data_prep_io.vz_toy_generators import TOY_MODULE
from vzero_nemo.data.manifest import MANIFEST_FILE, load_manifest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "slurm" / "data_prep.sh"


def _env(out: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "VZERO_"))}
    settings = dict(
        VZERO_ROOT=str(REPO),
        PYTHON=sys.executable,
        VZERO_DATA_DOMAIN="clevr",
        VZERO_DATA_NUM_PAIRS="44",
        VZERO_DATA_OUT=str(out),
        VZERO_DATA_SEED="3",
        VZERO_DATA_PAIRS_PER_SHARD="4",
        VZERO_DATA_SHARDS_PER_TASK="5",
        VZERO_DATA_ENERGON="0",
    )
    return {**env, **settings, **extra}


def _task(out: Path, task: int) -> subprocess.CompletedProcess:
    args = ["bash", str(SCRIPT), "--generators", TOY_MODULE, "--no-progress"]
    env = _env(out, SLURM_ARRAY_TASK_ID=str(task), SLURM_JOB_ID="100")
    return subprocess.run(args, env=env, cwd="/", capture_output=True, text=True, timeout=120)


def test_array_tasks_cover_the_set_and_the_last_finalizes(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    # 44 pairs / 4 per shard = 11 shards; 5 per task -> tasks 0, 1, 2 (2 writes 10..10).
    first = _task(out, 2)
    assert first.returncode == 0, first.stderr
    assert "--shard-range 10:11" in first.stdout
    assert "wrote 1 shards" in first.stdout and not (out / MANIFEST_FILE).exists()
    assert _task(out, 0).returncode == 0
    last = _task(out, 1)
    assert last.returncode == 0, last.stderr
    assert "--shard-range 5:10" in last.stdout and "finalized" in last.stdout
    manifest = load_manifest(out)
    assert [s.name for s in manifest.shards] == [f"clevr-{i:06d}.tar" for i in range(11)]
    assert manifest.num_pairs == 44 and len(manifest.val) == 1
    rerun = _task(out, 1)
    assert rerun.returncode == 0 and "wrote 0 shards, 5 already complete" in rerun.stdout
    idle = _task(out, 3)
    assert idle.returncode == 0 and "no shards (the set has 11)" in idle.stdout

    finalize_env = _env(out, VZERO_DATA_STEP="finalize", SLURM_ARRAY_TASK_ID="0")
    done = subprocess.run(["bash", str(SCRIPT)], env=finalize_env, cwd="/", capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "OK: 11 shards, 44 pairs read" in done.stdout


def test_missing_or_bad_settings_fail_clearly(tmp_path: Path) -> None:
    env = _env(tmp_path / "o", SLURM_ARRAY_TASK_ID="0")
    del env["VZERO_DATA_SEED"]
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "set VZERO_DATA_SEED" in done.stderr
    env = _env(tmp_path / "o", SLURM_ARRAY_TASK_ID="0", VZERO_DATA_NUM_PAIRS="ten")
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert (
        done.returncode != 0 and "VZERO_DATA_NUM_PAIRS='ten' is not a non-negative" in done.stderr
    )
    env = _env(tmp_path / "o", SLURM_ARRAY_TASK_ID="0", VZERO_DATA_ENERGON="yes")
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "VZERO_DATA_ENERGON='yes' must be 1" in done.stderr
