"""Shared by the functional and gpu tiers: tiny shard sets and `vzero_nemo.train` commands."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "data.games_per_iteration=2",
    "game.num_votes=4",
    "game.num_clue_rounds=1",
    "rollout.max_clue_tokens=6",
    "rollout.max_vote_tokens=6",
    "train.micro_batch_size=16",
    # One optimizer step per iteration: the training forward then scores exactly the rollout's
    # policy, which the functional tier checks (ratio == 1).
    "train.steps_per_iteration=1",
    "logging.wandb_mode=disabled",
    "logging.progress_bar=false",
    # Every collective of the project must get tensors on the communication device (what
    # NCCL requires), checked here on gloo.
    "parallel.check_collectives=true",
]
# Wall-clock fields differ between runs; everything else must repeat exactly.
TIMING_PREFIXES = ("time/", "perf/")


def env(threads: int = 1) -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS=str(threads), WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    return e


def make_shards(out: Path) -> Path:
    """120 CLEVR grid pairs (48x48) in 12 shards with a val split."""
    cmd = [
        sys.executable, "-m", "data_prep", "generate", "--domain", "clevr", "--num-pairs", "120",
        "--seed", "3", "--opt", "layout=grid", "--opt", "width=48", "--opt", "height=48",
        "--opt", "cell_size=16", "--out", str(out), "--pairs-per-shard", "10",
        "--val-fraction", "0.2", "--workers", "1", "--no-progress",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=300)
    return out


def train_cmd(run_dir: Path, data: Path, *extra: str, iterations: int = 3) -> list[str]:
    return [
        sys.executable, "-m", "vzero_nemo.train", "--recipe", "tiny_cpu",
        f"data.path={data}", f"logging.dir={run_dir}", f"train.iterations={iterations}",
        "checkpoint.save_interval=1", *FAST, *extra,
    ]  # fmt: skip


def read_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def comparable(records: list[dict]) -> list[dict]:
    """Metrics without wall-clock fields: what a resumed run must repeat exactly."""
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in records]


def kill_after_first_checkpoint_and_resume(cmd: list[str], run_dir: Path, threads: int = 1) -> int:
    """Start `cmd`, SIGKILL it once its first checkpoint exists, then rerun the same command
    to completion (it resumes). Returns the iteration the killed run had saved.

    The run gets a process group of its own and the whole group is killed, as a scheduler
    kills a job step: the run's helper processes (spawned workers) go with it instead of
    outliving the test."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(threads), start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (run_dir / "run_state.json").exists():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.2)
    finally:
        # Also when an assertion above failed: the run and its helpers end with the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    first = json.loads((run_dir / "run_state.json").read_text())["iteration"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(threads), timeout=900)
    return first


if __name__ == "__main__":
    # python tests/tiny_run.py DIR: the tiny shard set, for VZERO_TEST_SHARDS.
    print(make_shards(Path(sys.argv[1])))
