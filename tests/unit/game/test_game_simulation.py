"""Scripted play: the oracle catches the spy, random voting scores 1/num_players; bench speed."""

import dataclasses

import pytest

from vzero_nemo.config import GameConfig
from vzero_nemo.game import bench, simulate
from vzero_nemo.game.env import GameBatch
from vzero_nemo.game.policies import OraclePolicy, clevr_contradicts, play
from vzero_nemo.game.synthetic import random_truths

pytestmark = pytest.mark.unit


def game(**kw):
    return dataclasses.replace(GameConfig(), **kw)


@pytest.mark.parametrize(
    "domain, cfg",
    [
        ("clevr", game()),
        ("clevr", game(vote_mode="civilians")),
        ("clevr", game(num_players=6, num_spies=2, answer_format="boxed")),
        ("chart", game()),
        ("real", game(prompt_style="compact")),
    ],
)
def test_oracle_catches_the_spy(domain, cfg):
    m = simulate.simulate("oracle", 1000, domain, cfg, seed=3)
    assert m["count/games"] == 1000
    assert m["decision_accuracy"] >= 0.9
    assert m["invalid_vote_rate"] == 0.0 and m["clue_parse_failure_rate"] == 0.0
    assert m["reward/clue_spy"] < 0 < m["reward/clue_civilian"]  # caught spies lose Eq. 1


@pytest.mark.parametrize(
    "cfg", [game(), game(vote_mode="civilians"), game(num_players=5), game(num_votes=3)]
)
def test_random_voting_scores_one_over_num_players(cfg):
    m = simulate.simulate("random", 2000, "clevr", cfg, seed=5)
    assert abs(m["decision_accuracy"] - 1 / cfg.num_players) < 0.05
    assert abs(m["vote_accuracy"] - 1 / cfg.num_players) < 0.05
    assert m["na_rate"] == 0.0


def test_oracle_observer_votes_na_when_no_clue_contradicts():
    # A spy who only repeats true facts is indistinguishable: the oracle abstains.
    cfg = game(spy_image="blank")
    env = GameBatch(random_truths("clevr", 50, seed=2), cfg, seed=2)
    oracle = OraclePolicy(cfg, seed=0)
    play(env, oracle)  # blank-image spies echo earlier (true) clues
    m = env.metrics()
    assert m["na_rate"] > 0.9 and m["decision_accuracy"] < 0.1


def test_clevr_contradiction_check():
    scene = {"objects": [{"color": "red", "shape": "cube", "size": "small", "material": "metal"}]}
    assert not clevr_contradicts("small red metal cube", scene)
    assert not clevr_contradicts("a red thing", scene)
    assert clevr_contradicts("blue cube", scene)
    assert clevr_contradicts("large red cube", scene)
    assert not clevr_contradicts("something shiny", scene)  # no attribute words: no evidence


def test_simulate_cli_prints_metrics(capsys):
    out = simulate.main(["--policy", "oracle", "--games", "64", "--domain", "mixed", "--json"])
    assert out["decision_accuracy"] >= 0.9
    assert '"decision_accuracy"' in capsys.readouterr().out


def test_bench_1024_games_counts_every_request(capsys):
    # A benchmark prints its time; it does not assert one (shared CI machines are noisy).
    result = bench.bench(1024, repeat=1)
    assert result["requests"] == 1024 * (8 + 8)
    assert set(result) >= {"prompts", "parsing", "rewards", "advantages", "total"}
    assert all(result[k] > 0 for k in ("prompts", "parsing", "rewards", "advantages"))
    with capsys.disabled():
        print(f"\n[bench] bookkeeping of 1024 games: {result['total']:.3f} CPU s")
