"""The scripted spies of `vzero_nemo.experiments.spy_floor` on generated CLEVR pairs."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from data_prep.clevr.generate import generate_pair
from vzero_nemo.experiments.spy_floor import STRATEGIES, measure, play_pair, spy_clue
from vzero_nemo.game.policies import clevr_contradicts

pytestmark = pytest.mark.unit
GRID = dict(layout="grid", width=48, height=48, cell_size=16, sizes=("large",))


def _pairs(n: int) -> list:
    return [SimpleNamespace(truth=generate_pair(11, i, **GRID).truth) for i in range(n)]


def _scene(*phrases: str) -> dict:
    return {"objects": [{"color": p.split()[0], "shape": p.split()[1]} for p in phrases]}


def test_repeating_another_player_skips_own_and_false_clues():
    own = _scene("red cube", "blue sphere")
    earlier = [(True, "red cube"), (False, "green cylinder"), (False, "blue sphere")]
    rng = random.Random(0)
    assert {spy_clue("repeat_other", own, earlier, rng) for _ in range(20)} == {"blue sphere"}
    assert {spy_clue("repeat_any", own, earlier, rng) for _ in range(40)} == {
        "red cube",
        "blue sphere",
    }
    # nothing true of its image to repeat: it describes its own image
    assert spy_clue("repeat_other", own, [(False, "green cylinder")], rng) in {
        "red cube",
        "blue sphere",
    }
    with pytest.raises(ValueError, match="unknown spy strategy"):
        spy_clue("lie", own, earlier, rng)


def test_a_spy_repeating_a_civilian_never_contradicts_and_the_floor_is_lower():
    pairs = _pairs(6)
    for pair in pairs:
        for _round, contradicts, had_other, repeats in play_pair(
            pair, "repeat_other", 4, 2, random.Random(1), random.Random(2)
        ):
            assert not (had_other and contradicts)
            assert repeats == had_other
    result = measure(pairs, num_players=4, num_rounds=2, samples=8, seed=0)
    assert set(STRATEGIES) == {k.split("/")[0] for k in result if "/" in k}
    assert result["describe/contradicts_rate"] > 0
    assert result["repeat_other/contradicts_rate"] < result["describe/contradicts_rate"]
    # the same seats and civilian clues for every strategy
    assert result["describe/had_other_rate"] == result["repeat_other/had_other_rate"]
    assert "repeat_other/round2/contradicts_rate" in result
    assert result["repeat_other/repeat_other_rate"] == result["repeat_other/had_other_rate"]
    assert result["describe/repeat_other_rate"] < result["repeat_other/repeat_other_rate"]
    assert all(result[f"{s}/interval"] > 0 for s in STRATEGIES)
    # describe names objects of the spy's image: true of it, whatever the original
    for pair in pairs:
        scene = pair.truth.modified
        clue = spy_clue("describe", scene, [], random.Random(3))
        assert not clevr_contradicts(clue, scene)


def test_measure_rejects_no_pairs_or_samples():
    with pytest.raises(ValueError, match="samples=0"):
        measure(_pairs(1), num_players=4, num_rounds=1, samples=0, seed=0)
    with pytest.raises(ValueError, match=r"need pairs \(0\)"):
        measure([], num_players=4, num_rounds=1, samples=1, seed=0)
