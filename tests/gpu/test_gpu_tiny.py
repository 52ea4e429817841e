"""GPU tier (runs where CUDA exists; skipped elsewhere): the same tiny recipe in bf16 on
nccl, through the same CLI, trainer, generation and checkpoint code as the CPU tiers."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from tiny_run import ROOT, env, kill_after_first_checkpoint_and_resume, read_metrics, train_cmd

pytestmark = pytest.mark.gpu
GPU = ("model.params_dtype=bf16", "parallel.backend=nccl")


def test_tiny_bf16_run_on_gpu(tiny_shards, tmp_path):
    run = tmp_path / "gpu"
    cmd = train_cmd(run, tiny_shards, *GPU, iterations=2)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(threads=4), timeout=900)
    records = read_metrics(run)
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        assert r["train/step_applied"] == 1.0
        assert math.isfinite(r["train/loss"]) and math.isfinite(r["train/grad_norm"])
        # bf16 sampling vs the bf16 training forward: close, not bit-equal.
        assert r["train/old_logp_abs_diff"] < 0.05
    state = json.loads((run / "run_state.json").read_text())
    assert state["complete"]


def test_bf16_save_kill_and_resume_on_gpu(tiny_shards, tmp_path):
    """A bf16 checkpoint (weights + fp32 master weights and Adam moments) saved on the GPU,
    the run killed, and resumed to completion from it."""
    run = tmp_path / "resume"
    first = kill_after_first_checkpoint_and_resume(
        train_cmd(run, tiny_shards, *GPU, iterations=2), run, threads=4
    )
    assert first == 1
    records = read_metrics(run)
    assert [r["iteration"] for r in records] == [1, 2]
    assert all(math.isfinite(r["train/loss"]) for r in records)
    assert json.loads((run / "run_state.json").read_text())["complete"]
