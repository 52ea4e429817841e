"""Pre-training tasks: targets follow the ground truth, checks are right, the spy is never named."""

from __future__ import annotations

import io
import random
import re

import pytest
from PIL import Image

from data_prep.clevr.generate import generate_pair
from recipes import get_recipe
from vzero_nemo.data.pairs import GamePair
from vzero_nemo.data.schema import CLEVR_SHAPES
from vzero_nemo.game.policies import clevr_contradicts
from vzero_nemo.training.pretrain import (
    TASKS,
    WRONG_QUESTION,
    check_clues,
    make_example,
    most_like,
)

pytestmark = pytest.mark.unit

GRID = dict(layout="grid", width=48, height=48, cell_size=16, sizes=("large",))


def _pair(index: int) -> GamePair:
    sample = generate_pair(7, index, **GRID)
    rgb = [
        Image.open(io.BytesIO(b)).convert("RGB") for b in (sample.original_png, sample.modified_png)
    ]
    return GamePair(sample.key, rgb[0], rgb[1], sample.truth)


def _scene(*objects: tuple[str, str, int, int]) -> dict:
    return {
        "objects": [
            {"color": c, "shape": s, "size": "large", "material": "rubber", "center": [x, y]}
            for c, s, x, y in objects
        ]
    }


def test_most_like_prefers_exact_then_colour_then_shape_then_reading_order():
    scene = _scene(("blue", "sphere", 40, 8), ("red", "sphere", 8, 24), ("gray", "cube", 8, 8))
    assert most_like("red sphere", scene) == "red sphere"
    assert most_like("large red rubber cube", scene) == "red sphere"  # colour beats shape
    assert most_like("cyan cube", scene) == "gray cube"  # shape only
    assert most_like("cyan cylinder", scene) == "gray cube"  # nothing alike: first read
    assert most_like("blue cylinder", scene) == "blue sphere"


def test_check_clues_restates_each_clue_and_judges_it_against_the_scene():
    from vzero_nemo.game.roles import Clue

    scene = _scene(("red", "cube", 8, 8), ("blue", "sphere", 24, 8))
    clues = [Clue(0, 0, "red cube", True), Clue(0, 1, "large blue rubber cube", True)]
    assert (
        check_clues(clues, scene)
        == "1 red cube: red cube yes. 2 large blue rubber cube: blue sphere no. wrong: 2."
    )
    assert check_clues(clues[:1], scene).endswith("yes. wrong: none.")
    more = [Clue(0, 3, "gray cube", True), *clues, Clue(1, 3, "cyan cube", True)]
    assert check_clues(more, scene).endswith("wrong: 4 2.")  # each player once, in order


@pytest.fixture(scope="module")
def cfg():
    c = get_recipe("tiny_cpu")
    c.finalize(1)
    return c


def _verdicts(target: str) -> list[tuple[str, str]]:
    think = target[target.index("<think>") + 7 : target.index("</think>")]
    return re.findall(r"(\d) ([a-z ]+?): [a-z]+ [a-z]+ (yes|no)\.", think)


def test_vote_targets_check_clues_right_and_answer_uniformly_never_by_the_spy(cfg):
    rng = random.Random(0)
    pairs = [_pair(i) for i in range(6)]
    answers, verdicts = [], []
    for i in range(600):
        pair = pairs[i % len(pairs)]
        ex = make_example(pair, cfg, rng, "vote")
        for seat, clue, verdict in _verdicts(ex.target):
            assert f"Player {seat} said: {clue}." in ex.messages[-1]["content"][1]["text"]
            assert verdict == ("no" if clevr_contradicts(clue, pair.truth.original) else "yes")
            verdicts.append(verdict)
        answers.append(int(ex.target.split("<answer>")[1].split("</answer>")[0]))
        # Clues are mostly true; the answer is uniform over the seats (it carries no game truth).
        wrong = sorted({seat for seat, _, verdict in _verdicts(ex.target) if verdict == "no"})
        assert f"wrong: {' '.join(wrong) or 'none'}.</think>" in ex.target
    assert 0.6 < verdicts.count("yes") / len(verdicts) < 0.8
    counts = [answers.count(k) for k in range(1, cfg.game.num_players + 1)]
    assert min(counts) > 120 and max(counts) < 180, counts


def test_exists_targets_reason_as_one_check_and_answer_by_the_truth(cfg):
    rng = random.Random(1)
    pair = _pair(0)
    seen = set()
    for _ in range(60):
        ex = make_example(pair, cfg, rng, "exists")
        phrase = re.search(r"Is there a (\w+ \w+)\?", ex.messages[-1]["content"][1]["text"])[1]
        answer = "no" if clevr_contradicts(phrase, pair.truth.original) else "yes"
        want = f"<think>{phrase}: {most_like(phrase, pair.truth.original)} {answer}.</think>"
        assert ex.target == f"{want}<answer>{answer}</answer>"
        seen.add(answer)
    assert seen == {"yes", "no"}


def test_every_task_builds_and_unknown_task_is_named(cfg):
    rng = random.Random(2)
    pair = _pair(1)
    for task in TASKS:
        ex = make_example(pair, cfg, rng, task)
        assert ex.task == task and ex.target.endswith("</answer>")
    with pytest.raises(ValueError, match="unknown pre-training task 'spy'"):
        make_example(pair, cfg, rng, "spy")


def test_wrong_task_asks_the_vote_statements_and_answers_the_wrong_players(cfg):
    rng = random.Random(3)
    pair = _pair(2)
    answers = set()
    for _ in range(80):
        ex = make_example(pair, cfg, rng, "wrong")
        text = ex.messages[-1]["content"][1]["text"]
        assert text.endswith(WRONG_QUESTION) and "Who is the spy" not in text
        wrong = [seat for seat, clue, verdict in _verdicts(ex.target) if verdict == "no"]
        assert ex.target.endswith(f"<answer>{' '.join(wrong) or 'none'}</answer>")
        answers.add(len(wrong))
    assert {0, 1, 2} <= answers


def _with(**pretrain):
    c = get_recipe("tiny_cpu")
    for key, value in pretrain.items():
        setattr(c.pretrain, key, value)
    c.finalize(1)
    return c


def test_vague_rate_teaches_shape_clues_true_of_the_image_shown():
    vague = _with(vague_rate=1.0)
    rng = random.Random(4)
    pairs = [_pair(i) for i in range(6)]
    roles = set()
    for i in range(200):
        pair = pairs[i % len(pairs)]
        ex = make_example(pair, vague, rng, "describe")
        said = ex.target.removeprefix("<answer>").removesuffix("</answer>")
        scene = pair.truth.modified if ex.image == "modified" else pair.truth.original
        assert len(said.split()) == 1 and any(said == o["shape"] for o in scene["objects"])
        roles.add(ex.image)
        vote = make_example(pair, vague, rng, "vote")
        for _, clue, verdict in _verdicts(vote.target):
            assert len(clue.split()) == 1 and clue in CLEVR_SHAPES
            assert verdict == ("no" if clevr_contradicts(clue, pair.truth.original) else "yes")
    assert roles == {"original", "modified"}  # spy and civilian examples alike
    some = _with(vague_rate=0.3)
    targets = [make_example(pairs[i % 6], some, rng, "describe").target for i in range(600)]
    share = sum(len(t.split()) == 1 for t in targets) / len(targets)
    assert 0.22 < share < 0.38, share


def test_vague_rate_zero_keeps_two_word_clues_and_bad_rates_are_refused(cfg):
    assert cfg.pretrain.vague_rate == 0.0  # the recipe default
    rng = random.Random(5)
    for i in range(100):
        pair = _pair(i % 3)
        said = make_example(pair, cfg, rng, "describe").target
        assert len(said.removeprefix("<answer>").removesuffix("</answer>").split()) == 2
        clues = [clue for _, clue, _ in _verdicts(make_example(pair, cfg, rng, "vote").target)]
        assert clues and all(len(clue.split()) >= 2 for clue in clues)
    with pytest.raises(ValueError, match=r"pretrain.vague_rate=1.5 must be in \[0, 1\]"):
        _with(vague_rate=1.5)


def test_clue_eval_counts_a_clue_of_one_attribute_as_vague():
    from vzero_nemo.eval.clue_eval import _vague

    assert _vague("cube") and _vague("red") and _vague("a red one.")
    assert not _vague("red cube") and not _vague("large red rubber cube")
    assert not _vague("something") and not _vague("")


def test_spy_knows_edit_puts_the_edited_objects_in_spy_describe_prompts_only(cfg):
    from vzero_nemo.game.prompts import edited_parts

    cfg.game.spy_knows_edit = True
    rng = random.Random(4)
    pair = _pair(2)
    roles = set()
    for _ in range(40):
        ex = make_example(pair, cfg, rng, "describe")
        text = ex.messages[-1]["content"][1]["text"]
        spy = ex.image == "modified"
        roles.add(spy)
        assert (f"{edited_parts(pair.truth)}." in text) == spy
        assert ("dited" in text) == spy
    assert roles == {True, False}


@pytest.mark.parametrize("rounds", [1, 2])
def test_clue_eval_counts_each_role_and_with_several_rounds_each_round(rounds):
    """Role totals are the sums of their rounds; round keys exist only with several rounds;
    a random policy's clues are counted where the scene check puts them."""
    from types import SimpleNamespace

    from vzero_nemo.config import GameConfig
    from vzero_nemo.eval.clue_eval import clue_counts, summarise
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.policies import contradicts_original, make_policy, play

    game = GameConfig(num_players=4, num_clue_rounds=rounds, num_votes=2)
    pairs = [_pair(i) for i in range(6)]
    env = GameBatch([p.truth for p in pairs], game, seed=3)
    play(env, make_policy("random", game, seed=5))
    counts = clue_counts(SimpleNamespace(env=env), pairs)
    round_keys = {k for k in counts if "/round" in k}
    assert round_keys == (
        {f"{r}/round{k}" for r in ("spy", "civilian") for k in (1, 2)} if rounds == 2 else set()
    )
    for role, per_seat in (("spy", 1), ("civilian", 3)):
        assert counts[role]["clues"] == len(pairs) * per_seat * rounds
        if rounds == 2:
            for field in counts[role]:
                by_round = sum(counts[f"{role}/round{k}"][field] for k in (1, 2))
                assert counts[role][field] == pytest.approx(by_round)
    last = f"spy/round{rounds}" if rounds == 2 else "spy"
    want = sum(
        bool(c["clue"]) and contradicts_original(c["clue"], pairs[g].truth)
        for g in range(len(pairs))
        for c in env.transcript(g)["clues"]
        if c["role"] == "spy" and c["round"] == rounds
    )
    assert 0 < want == counts[last]["contradicts"]
    rewards = {True: [], False: []}  # the clue rewards of spy clues, by contradiction
    for g in range(len(pairs)):
        for c in env.transcript(g)["clues"]:
            if c["role"] == "spy" and c["clue"]:
                rewards[contradicts_original(c["clue"], pairs[g].truth)].append(c["reward"])
    assert counts["spy"]["parsed"] == len(rewards[True]) + len(rewards[False])
    assert counts["spy"]["reward_contradicting"] == pytest.approx(sum(rewards[True]))
    assert counts["spy"]["reward_consistent"] == pytest.approx(sum(rewards[False]))
    rates = summarise(
        counts, {"votes": 0, "votes_spy": 0, "votes_na": 0, "games": 0, "decision_credit": 0}
    )
    assert ("spy/round2/contradicts_rate" in rates) == (rounds == 2)
    assert rates["spy/reward_when_contradicting"] == pytest.approx(
        sum(rewards[True]) / len(rewards[True])
    )


def test_clue_eval_tells_repeating_another_player_from_repeating_oneself():
    """A spy that says its own round-1 clue again repeats, but not another player; one that
    says a civilian's clue repeats another player. Rewards split the same way."""
    from types import SimpleNamespace

    from vzero_nemo.config import GameConfig
    from vzero_nemo.eval.clue_eval import clue_counts, summarise

    def clue(player, role, rnd, text, reward):
        return {"player": player, "role": role, "round": rnd, "clue": text, "reward": reward,
                "reasoning": ""}  # fmt: skip

    clues = [
        clue(1, "civilian", 1, "red cube", 0.5),
        clue(2, "spy", 1, "blue sphere", -1.0),
        clue(1, "civilian", 2, "green cylinder", 0.25),
        clue(2, "spy", 2, "blue sphere", -0.5),  # itself: a repeat, not of another player
        clue(2, "spy", 2, "Red cube.", 0.0),  # the civilian's round-1 clue
    ]
    env = SimpleNamespace(
        cfg=GameConfig(num_players=2, num_clue_rounds=2),
        num_games=1,
        transcript=lambda g: {"clues": clues},
    )
    counts = clue_counts(SimpleNamespace(env=env), [_pair(0)])
    spy = counts["spy"]
    assert (spy["repeats"], spy["repeats_other"]) == (2, 1)
    assert (counts["civilian"]["repeats"], counts["civilian"]["repeats_other"]) == (0, 0)
    assert spy["reward_repeating_other"] == 0.0
    assert spy["reward_not_repeating_other"] == pytest.approx(-1.5)
    rates = summarise(
        counts, {"votes": 0, "votes_spy": 0, "votes_na": 0, "games": 0, "decision_credit": 0}
    )
    assert rates["spy/repeat_other_rate"] == pytest.approx(1 / 3)
    assert rates["spy/reward_when_not_repeating_other"] == pytest.approx(-0.75)
    assert rates["spy/round2/repeat_other_rate"] == pytest.approx(0.5)


def test_clue_plan_targets_say_agree_exactly_when_they_repeat_an_agreeable_earlier_clue():
    """With game.clue_plan the describe target is <think>PLAN</think><answer>CLUE</answer>:
    `agree` answers name an earlier clue true of the speaker's image, `new` answers an object
    of it; both plans, for both roles, at about pretrain.agree_rate where agreeing is possible."""
    from vzero_nemo.game.parsing import parse_completion
    from vzero_nemo.training.pretrain import _present

    c = _with(agree_rate=0.5)
    c.game.clue_plan = True
    rng = random.Random(6)
    pairs = [_pair(i) for i in range(6)]
    plans = {(role, plan): 0 for role in ("spy", "civilian") for plan in ("agree", "new")}
    possible = 0
    for i in range(600):
        pair = pairs[i % len(pairs)]
        ex = make_example(pair, c, rng, "describe")
        text = ex.messages[-1]["content"][1]["text"]
        assert text.endswith("Use <think>agree or new</think><answer></answer>.")
        parsed = parse_completion(ex.target, "think_answer")
        assert parsed.format_ok and parsed.reasoning in ("agree", "new")
        scene = pair.truth.modified if ex.image == "modified" else pair.truth.original
        earlier = re.findall(r"said: ([a-z]+ [a-z]+)\.", text)
        agreeable = set(earlier) & _present(scene)
        if parsed.reasoning == "agree":
            assert parsed.answer in agreeable
        else:
            assert parsed.answer in _present(scene)
        possible += bool(agreeable)
        plans["spy" if ex.image == "modified" else "civilian", parsed.reasoning] += 1
    assert all(n > 0 for n in plans.values()), plans
    share = (plans["spy", "agree"] + plans["civilian", "agree"]) / possible
    assert 0.4 < share < 0.6, share


def test_clue_plan_needs_compact_think_answer_prompts_and_asks_for_the_plan():
    from vzero_nemo.config import GameConfig
    from vzero_nemo.game.prompts import PromptBuilder

    game = GameConfig(prompt_style="compact", clue_plan=True)
    game.validate()
    builder = PromptBuilder(game)
    assert builder.clue_format == "think_answer"
    assert "<think>agree or new</think>" in builder.clue_text("clevr", 1, "spy", 0, (), ())
    assert PromptBuilder(GameConfig(prompt_style="compact")).clue_format == "answer"
    for bad in (
        GameConfig(clue_plan=True),
        GameConfig(prompt_style="compact", clue_plan=True, answer_format="boxed"),
    ):
        with pytest.raises(ValueError, match="game.clue_plan=true needs game.prompt_style"):
            bad.validate()


def test_clue_eval_counts_the_agree_plan_per_role():
    from types import SimpleNamespace

    from vzero_nemo.config import GameConfig
    from vzero_nemo.eval.clue_eval import clue_counts, summarise

    def clue(player, role, text, plan, reward):
        return {"player": player, "role": role, "round": 1, "clue": text, "reward": reward,
                "reasoning": plan}  # fmt: skip

    clues = [
        clue(1, "civilian", "red cube", "new", 0.3),
        clue(2, "spy", "red cube", "agree", -0.4),
        clue(3, "civilian", "red cube", " Agree ", 0.2),
        clue(4, "civilian", "blue sphere", "agree, red cube", -0.1),  # not the plan word alone
        clue(5, "civilian", None, "new", 0.5),  # unreadable: in the denominators only
    ]
    env = SimpleNamespace(cfg=GameConfig(num_players=4, num_clue_rounds=1), num_games=1,
                          transcript=lambda g: {"clues": clues})  # fmt: skip
    counts = clue_counts(SimpleNamespace(env=env), [_pair(0)])
    assert (counts["spy"]["plan_agree"], counts["civilian"]["plan_agree"]) == (1, 1)
    rates = summarise(
        counts, {"votes": 0, "votes_spy": 0, "votes_na": 0, "games": 0, "decision_credit": 0}
    )
    assert rates["spy/plan_agree_rate"] == 1.0
    assert (rates["spy/parsed_rate"], rates["civilian/parsed_rate"]) == (1.0, 0.75)
    assert (rates["spy/reward_when_unreadable"], rates["civilian/reward_when_unreadable"]) == (
        0.0,
        0.5,
    )
    assert rates["civilian/plan_agree_rate"] == pytest.approx(1 / 4)
    # The clue reward split by plan: the spy's one agree clue; the civilians' agree clue
    # against the mean of their other two.
    assert rates["spy/reward_when_plan_agree"] == pytest.approx(-0.4)
    assert rates["spy/reward_when_plan_new"] == 0.0
    assert rates["civilian/reward_when_plan_agree"] == pytest.approx(0.2)
    assert rates["civilian/reward_when_plan_new"] == pytest.approx(0.1)
