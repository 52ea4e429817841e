"""Faults a run must survive or stop on cleanly: non-finite steps, all-unparseable outputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from tiny_run import ROOT, env, read_metrics, train_cmd

pytestmark = pytest.mark.functional


def test_nonfinite_step_is_skipped_counted_and_aborts_after_the_limit(tiny_shards, tmp_path):
    worker = ROOT / "tests" / "functional" / "_nonfinite_worker.py"
    cmd = [sys.executable, str(worker), str(tiny_shards), str(tmp_path / "run")]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env(), timeout=600, capture_output=True, text=True, check=True
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["poisoned"] == {
        "step_applied": 0.0, "skipped": 1, "in_a_row": 1, "weights_changed": False,
    }  # fmt: skip
    assert out["clean"] == {
        "step_applied": 1.0, "skipped": 1, "in_a_row": 0, "weights_changed": True,
    }  # fmt: skip
    assert "2 consecutive steps" in out["aborted"]
    assert "train.max_consecutive_nonfinite" in out["aborted"]
    assert out["skipped_total"] == 3


def test_all_unparseable_outputs_still_train_and_log(tiny_shards, tmp_path):
    # One token can hold no `<answer>...</answer>`: every clue and vote fails to parse, every
    # group's rewards are equal (zero advantage), and the run still trains and logs.
    run = tmp_path / "unparseable"
    cmd = train_cmd(run, tiny_shards, "rollout.max_clue_tokens=1", "rollout.max_vote_tokens=1",
                    iterations=2)  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(run)
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        assert r["game/clue_parse_failure_rate"] == 1.0
        assert r["game/invalid_vote_rate"] + r["game/na_rate"] == 1.0
        assert r["game/decision_accuracy"] == 0.0
        assert r["train/step_applied"] == 1.0
        assert all(math.isfinite(v) for k, v in r.items()
                   if isinstance(v, float) and k != "train/grad_norm")  # fmt: skip
