"""`grpo.rae_update=game` over 2 DP ranks equals the official code's per-micro-step RAE,
where every GPU plays one game and the role means are averaged over the GPUs (G L708-720 of
the oracle's source). The oracle replays each micro-step from both ranks' texts.

    .venv/bin/python -m pytest tests/distributed/test_official_rae_dp.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.oracles import official_vision_zero as official

pytestmark = pytest.mark.distributed

WORKER = Path(__file__).with_name("_official_rae_worker.py")


def test_per_game_rae_over_two_ranks_matches_the_official_micro_steps(tmp_path, launch):
    launch(WORKER, 2, ["--out", str(tmp_path)], tmp_path / "logs", timeout_s=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    oracle = official.OfficialRewardPath()
    steps = 0
    for it0, it1 in zip(*ranks):
        n, rounds = it0["n"], it0["rounds"]
        for g0, g1 in zip(it0["games"], it1["games"]):  # the k-th game of each rank
            games = [(g["spy"], n, rounds, g["votes"]) for g in (g0, g1)]
            for ours, theirs in zip((g0, g1), oracle.play_micro_step(games)):
                assert ours["clue_adv"] == pytest.approx(theirs["clue_advantages"], abs=1e-6)
            steps += 1
        for it in (it0, it1):  # both ranks hold the same baselines, the oracle's
            assert it["baselines"] == pytest.approx([oracle.b_spy, oracle.b_civ], abs=1e-6)
    assert steps == 4 * 3
