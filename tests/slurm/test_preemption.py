"""(d) Preemption over Slurm: USR1 -> save -> requeue -> resume -> same result as no preemption.

    .venv/bin/python -m pytest -m slurm tests/slurm/test_preemption.py -q

The tiny CPU recipe runs through slurm/vzero_tiny_cpu.sh (2 nodes x 1 process, gloo, DP=2).
While it trains, `scancel --batch --signal=USR1` delivers Slurm's early-warning signal to the
batch shell, exactly as `#SBATCH --signal=B:USR1@<s>` does before a time limit. The job must
save, requeue itself, resume from that checkpoint in its next start and finish every
iteration; each iteration appears once in metrics.jsonl and every metric except wall-clock
timings equals that of an uninterrupted run submitted the same way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.slurm._cluster import SlurmCluster
from tests.tiny_run import FAST, TIMING_PREFIXES, make_shards, read_metrics

pytestmark = pytest.mark.slurm

ITERATIONS = 4
# No periodic checkpoint: the only one before the end is the one the signal asks for.
OVERRIDES = (*FAST, f"train.iterations={ITERATIONS}", "checkpoint.save_interval=1000")


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shards") / "clevr")


def _submit(cluster: SlurmCluster, run_dir: Path, shards: Path) -> int:
    run_dir.parent.mkdir(parents=True)
    return cluster.sbatch(
        "slurm/vzero_tiny_cpu.sh",
        *OVERRIDES,
        options=(f"--output={run_dir.parent}/%x-%j.out",),
        env={"VZERO_RUN_DIR": str(run_dir), "VZERO_DATA_DIR": str(shards)},
    )


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in records]


def _logged_iterations(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(read_metrics(run_dir)) if path.is_file() else 0


def test_usr1_saves_requeues_and_resumes_exactly(
    slurm_cluster: SlurmCluster, tiny_shards: Path, tmp_path: Path
) -> None:
    preempted_dir, reference_dir = tmp_path / "preempted" / "run", tmp_path / "reference" / "run"
    preempted = _submit(slurm_cluster, preempted_dir, tiny_shards)
    reference = _submit(slurm_cluster, reference_dir, tiny_shards)

    # Signal once the first iteration is logged, so the stop lands in the middle of the run.
    deadline = time.monotonic() + 300
    while _logged_iterations(preempted_dir) == 0:
        assert time.monotonic() < deadline, "no iteration logged within 300 s"
        assert slurm_cluster.job(preempted)["JobState"] in ("PENDING", "RUNNING")
        time.sleep(0.5)
    signal = slurm_cluster.run("scancel", "--batch", "--signal=USR1", str(preempted))
    assert signal.returncode == 0, signal.stderr

    info = slurm_cluster.wait_final(preempted, timeout_s=600)
    reference_info = slurm_cluster.wait_final(reference, timeout_s=600)
    logs = sorted((preempted_dir / "logs").glob(f"*-{preempted}-restart*.log"))
    log_text = [p.read_text() for p in logs]
    assert info["JobState"] == "COMPLETED", (info, log_text)
    assert reference_info["JobState"] == "COMPLETED", reference_info
    assert (info["Restarts"], reference_info["Restarts"]) == ("1", "0")

    # One log per start, none overwritten: the first saved on USR1 before the last iteration
    # and requeued; the second resumed from that checkpoint and completed the run.
    assert [p.name for p in logs] == [
        f"vzero_tiny_cpu-{preempted}-restart0.log",
        f"vzero_tiny_cpu-{preempted}-restart1.log",
    ]
    assert "USR1 received" in log_text[0] and f"requeueing job {preempted}" in log_text[0]
    assert "resumed from" in log_text[1]
    assert f"run complete: {ITERATIONS}/{ITERATIONS} iterations" in log_text[1]
    state = json.loads((preempted_dir / "run_state.json").read_text())
    assert state == {"iteration": ITERATIONS, "iterations": ITERATIONS, "complete": True}

    metrics, reference_metrics = read_metrics(preempted_dir), read_metrics(reference_dir)
    assert [m["iteration"] for m in metrics] == list(range(1, ITERATIONS + 1))
    assert [m["iteration"] for m in reference_metrics] == list(range(1, ITERATIONS + 1))
    assert _comparable(metrics) == _comparable(reference_metrics)
