"""Both Iterative-SPO stages train, each from its own samples alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tiny_run import ROOT, env, read_metrics, train_cmd

pytestmark = pytest.mark.functional


def test_each_stage_learns_from_its_own_samples_only(tiny_shards, tmp_path):
    worker = ROOT / "tests" / "functional" / "_stage_grad_worker.py"
    cmd = [sys.executable, str(worker), str(tiny_shards), str(tmp_path / "run")]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env(), timeout=600, capture_output=True, text=True, check=True
    )
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[7:])
    for stage in ("decision", "clue"):
        # One step raises what was rewarded: the log-prob change follows the advantages
        # (0.61 decision, 0.54 clue on the main job's data; a sign error makes it negative).
        assert out[stage].pop("logp_shift_vs_advantage") > 0.3, (stage, out)
        assert out[stage] == {
            "nonzero": True,
            "other_stage_noise_changes_grad": False,  # the inactive stage's rewards: no effect
            "own_noise_changes_grad": True,  # ... while the active stage's rewards matter
        }, (stage, out)


def test_a_short_run_switches_stages_and_trains_each(tiny_shards, tmp_path):
    run = tmp_path / "alternate"
    # 2 games: 8 clue turns (4 players, 1 round) and 12 observer votes (6 per game).
    cmd = train_cmd(run, tiny_shards, "spo.schedule=alternate", "game.num_votes=6",
                    "checkpoint.save_stage_switches=true", iterations=3)  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=900)
    records = read_metrics(run)
    assert [r["stage"] for r in records] == ["decision", "clue", "decision"]
    assert [r["train/num_sequences"] for r in records] == [12, 8, 12]
    assert all(r["train/step_applied"] == 1.0 for r in records)
    assert [r["spo/num_switches"] for r in records] == [1, 2, 3]
    switches = sorted(p.name for p in (run / "checkpoints" / "stage_switches").iterdir())
    assert switches == [
        "iter_0000001_decision_to_clue", "iter_0000002_clue_to_decision",
        "iter_0000003_decision_to_clue",
    ]  # fmt: skip
