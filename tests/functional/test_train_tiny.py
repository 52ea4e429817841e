"""Tiny self-play runs end to end through the real CLI: data -> train -> checkpoints.

2-3 iterations of the tiny recipe on CPU at DP=1 and at TP=2 (torchrun, gloo); metrics are
asserted (finite, in range, stage bookkeeping); a run killed after a checkpoint and resumed
logs exactly the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest
from tiny_run import (
    ROOT,
    comparable,
    env,
    kill_after_first_checkpoint_and_resume,
    read_metrics,
    train_cmd,
)

pytestmark = pytest.mark.functional


def check_metrics(records: list[dict], iterations: int) -> None:
    assert [r["iteration"] for r in records] == list(range(1, iterations + 1))
    for r in records:
        for key in ("game/decision_accuracy", "game/na_rate", "game/invalid_vote_rate"):
            assert 0.0 <= r[key] <= 1.0, (key, r[key])
        for key, value in r.items():
            if isinstance(value, float) and key != "train/grad_norm":
                assert math.isfinite(value), (key, value)
        assert r["stage"] in ("decision", "clue") and r["next_stage"] in ("decision", "clue")
        assert r["game/games"] == 2 and r["game/votes"] == 8
        assert r["train/step_applied"] == 1.0
        assert r["train/kl"] >= 0.0
        # Sampling log-probs equal the training forward's log-probs of the same tokens.
        assert r["train/old_logp_abs_diff"] < 1e-3
        assert abs(r["train/ratio"] - 1.0) < 1e-3
    # Stage bookkeeping: each iteration trains the stage the previous one chose.
    for prev, cur in zip(records, records[1:]):
        assert cur["stage"] == prev["next_stage"]
    assert records[0]["stage"] == "decision"
    assert records[0]["spo/dwell"] == 1.0


def test_tiny_run_dp1_and_resume_after_kill(tiny_shards, tmp_path):
    shards = tiny_shards
    full = tmp_path / "full"
    subprocess.run(train_cmd(full, shards), check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(full)
    check_metrics(records, 3)
    state = json.loads((full / "run_state.json").read_text())
    assert state == {"iteration": 3, "iterations": 3, "complete": True}
    assert (full / "checkpoints" / "latest").read_text().strip() == "iter_0000003"

    # Kill -9 once the first checkpoint exists, then resume with the same command.
    killed = tmp_path / "killed"
    first = kill_after_first_checkpoint_and_resume(train_cmd(killed, shards), killed)
    assert 1 <= first < 3
    resumed = read_metrics(killed)
    check_metrics(resumed, 3)
    assert comparable(resumed) == comparable(records)


def test_sigusr1_saves_and_exits_zero(tiny_shards, tmp_path):
    shards = tiny_shards
    run = tmp_path / "usr1"
    proc = subprocess.Popen(train_cmd(run, shards, iterations=50), cwd=ROOT, env=env())
    try:
        deadline = time.monotonic() + 600
        while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    state = json.loads((run / "run_state.json").read_text())
    assert not state["complete"] and state["iteration"] >= 1
    latest = (run / "checkpoints" / "latest").read_text().strip()
    assert latest == f"iter_{state['iteration']:07d}"
    assert len(read_metrics(run)) == state["iteration"]


def test_tiny_run_tp2_through_torchrun(tiny_shards, tmp_path):
    shards = tiny_shards
    run = tmp_path / "tp2"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        *train_cmd(run, shards, "parallel.tensor_model_parallel_size=2", iterations=2)[1:],
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(run)
    check_metrics(records, 2)
    meta = json.loads((run / "checkpoints" / "iter_0000002" / "meta.json").read_text())
    assert meta["tensor_model_parallel_size"] == 2


def test_scripted_oracle_clues_train_only_the_decision_stage_two_steps_per_iteration(
    tiny_shards, tmp_path
):
    run = tmp_path / "oracle"
    cmd = train_cmd(
        run, tiny_shards, "rollout.clue_policy=oracle", "train.steps_per_iteration=2", iterations=2
    )
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(run)
    assert [r["stage"] for r in records] == ["decision", "decision"]
    # 2 games x 4 observer votes are trained; the scripted clues carry no tokens.
    assert all(r["train/num_sequences"] == 8 for r in records)
    # Two optimizer steps per iteration: the second mini-batch is scored by the once-updated
    # policy, so its log-probs move away from the rollout's (and stay near them).
    assert all(r["train/step_applied"] == 1.0 for r in records)
    assert all(0.0 < r["train/old_logp_abs_diff"] < 0.5 for r in records)
    # Oracle clues are well-formed and grounded: nothing fails to parse.
    assert all(r["game/clue_parse_failure_rate"] == 0.0 for r in records)


def test_bf16_run_saves_and_resumes_exactly(tiny_shards, tmp_path):
    """bf16 parameters (every GPU recipe) through megatron's mixed-precision optimizer: the
    checkpoint holds bf16 weights and fp32 master weights + Adam moments, and a run killed
    after its first save and resumed repeats the uninterrupted run exactly."""
    bf16 = ("model.params_dtype=bf16",)
    full, killed = tmp_path / "full", tmp_path / "killed"
    cmd = train_cmd(full, tiny_shards, *bf16, iterations=2)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(full)
    assert [r["train/step_applied"] for r in records] == [1.0, 1.0]
    first = kill_after_first_checkpoint_and_resume(
        train_cmd(killed, tiny_shards, *bf16, iterations=2), killed
    )
    assert first == 1
    assert comparable(read_metrics(killed)) == comparable(records)
