"""`eval run --oracle-out`: the oracle-clue suite played by the same process (model built
once) equals a separate `eval run` with scripted oracle clues, game for game; a bad call is
refused before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tiny_run import ROOT, env

pytestmark = pytest.mark.functional
FAST = [
    "eval.games=6", "eval.retention_items=4", "eval.sample_games=1", "game.num_votes=4",
    "rollout.max_clue_tokens=6", "rollout.max_vote_tokens=12", "logging.wandb_mode=disabled",
]  # fmt: skip


def _eval(data, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vzero_nemo.eval", "run", "--recipe", "tiny_cpu",
           f"data.path={data}", *FAST, *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env(), timeout=600, capture_output=True, text=True)


def _games(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "games.jsonl").read_text().splitlines()]


def test_oracle_out_equals_a_separate_oracle_run(tiny_shards, tmp_path):
    both = _eval(tiny_shards, "--out", str(tmp_path / "own"), "--oracle-out",
                 str(tmp_path / "oracle"), "eval.oracle_games=4")  # fmt: skip
    assert both.returncode == 0, both.stderr[-2000:]
    alone = _eval(tiny_shards, "--out", str(tmp_path / "alone"), "eval.games=4",
                  "rollout.clue_policy=oracle", "eval.retention_items=0")  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-2000:]
    own, oracle = _games(tmp_path / "own"), _games(tmp_path / "oracle")
    assert len(own) == 6 and len(oracle) == 4
    assert oracle == _games(tmp_path / "alone")
    summary = json.loads((tmp_path / "oracle" / "summary.json").read_text())
    assert summary["clue_policy"] == "oracle" and summary["skills"] == {}
    assert json.loads((tmp_path / "own" / "summary.json").read_text())["skills"]


def test_oracle_out_into_the_out_folder_is_refused(tiny_shards, tmp_path):
    bad = _eval(tiny_shards, "--out", str(tmp_path / "x"), "--oracle-out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "give it its own" in bad.stderr
    assert not (tmp_path / "x").exists()
