"""The official code's reading of completions (game.answer_parser / format_flag = official):
exact cases, the flags alone, adversarial inputs in linear time."""

import time

import pytest

from vzero_nemo.game import parsing, parsing_official
from vzero_nemo.game.parsing import NA, parse_clue, parse_completion, parse_vote

pytestmark = pytest.mark.unit

OFFICIAL = {"answer_parser": "official", "format_flag": "official"}


def test_shared_vote_values():
    assert parsing_official.NA == parsing.NA


@pytest.mark.parametrize(
    "text, vote",
    [
        ("Player 3 said a cone. \\boxed{3}", 2),
        ("reasoning \\boxed{Player 4}", 3),
        ("\\boxed{2 or 3}", 1),  # the first lone digit: a hedge counts as its first player
        ("\\boxed{1} then \\boxed{2}", 0),  # the FIRST box
        ("\\boxed{\\text{2}}", 1),  # cut at the first "}": "\\text{2" still holds a lone 2
        ("\\\\boxed{4}", 3),  # a doubled backslash is accepted
        ("\\boxed{N/A}", NA),
        ("\\boxed{na}", NA),
        ("\\boxed{N/A.}", None),  # not exactly N/A, no digit, not JSON
        ("\\boxed{none}", None),
        ("\\boxed{Player 10}", None),  # no lone digit; JSON fails
        ("\\boxed{P3}", None),  # "P3": the digit is not alone
        ("\\boxed{-2}", 1),  # "-" is not a word character: a lone 2
        ("\\boxed{5}", None),  # out of range for 4 players: invalid
        ("\\boxed{}", None),
        ('<answer>{"spy": 3}</answer>', 2),
        ('<answer>{"spy": 10}</answer>', None),  # JSON 10: out of range
        ('<answer>{"spy": true}</answer>', 0),  # int(True) == 1
        ('<answer>{"spy": "N/A"}</answer>', None),
        ("<answer>The spy is Player 2</answer>", 1),
        ("<answer>1</answer> changed my mind <answer>2</answer>", 0),  # the FIRST slot
        ("<think>x</think><answer>3", 2),  # unclosed: the rest of the text
        ("<answer>3 <think>4", 2),
        ("<ANSWER>2</ANSWER>", None),  # tags are case-sensitive
        ("3", None),
        ("\\boxed{3", None),  # unclosed box, no answer tag
    ],
)
def test_official_vote_cases(text, vote):
    assert parse_vote(text, 4, answer_format="boxed", **OFFICIAL)[0] == vote


@pytest.mark.parametrize(
    "text, ok",
    [
        ("Player 3 said a cone. \\boxed{3}", True),
        ("short \\boxed{3}", False),  # reasoning "short": 5 characters
        ("0123456789 \\boxed{3}", False),  # exactly 10 characters
        ("0123456789a \\boxed{3}", True),
        ("<think>0123456789a</think> \\boxed{}", False),  # empty answer
        ("<think></think>\\boxed{3}", False),  # an empty think block is the reasoning
        ("<answer>3</answer>", True),  # the line "<answer>3</answer>" is the reasoning
        ("<answer>3", False),  # 9 characters of reasoning
        ("\\boxed{3}\nbecause of the cone", True),  # lines after the box
        ("\\boxed{3} because of the cone", False),  # the only line holds the box
        ("You are player 1 of 4.\n\\boxed{3}", True),  # the text before the box
        ("\\boxed{3}\nYou are player 1 of 4.", False),  # lines: prompt phrases are dropped
    ],
)
def test_official_format_flag(text, ok):
    assert parse_completion(text, "boxed", **OFFICIAL).format_ok is ok


def test_each_setting_changes_one_thing():
    text = "<think>the cone is wrong</think><answer>2 or 3</answer>"
    strict = parse_vote(text, 4)
    assert strict[0] is None and strict[1].format_ok
    vote, parsed = parse_vote(text, 4, answer_parser="official")
    assert vote == 1 and parsed.format_ok  # official vote, strict flag
    vote, parsed = parse_vote("<think>ab</think><answer>2</answer>", 4, format_flag="official")
    assert vote == 1 and not parsed.format_ok  # strict vote, official flag (2 characters)


def test_official_reasoning_and_clue():
    clue, parsed = parse_clue("I see a red cube.\n\\boxed{red cube} \\boxed{blue}", **OFFICIAL)
    assert clue == "red cube" and parsed.reasoning == "I see a red cube."
    clue, parsed = parse_clue("<answer>blue sphere</answer>", "boxed", **OFFICIAL)
    assert clue == "blue sphere" and parsed.format_ok


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="game.answer_parser='loose'"):
        parse_vote("\\boxed{1}", 4, answer_parser="loose")
    with pytest.raises(ValueError, match="game.format_flag='x'"):
        parse_completion("\\boxed{1}", format_flag="x")


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "\\boxed{" * (n // 7),
        lambda n: "<answer>" * (n // 8),
        lambda n: "<think>" * (n // 7) + "\\boxed{1}",
        lambda n: "x\n" * (n // 2) + "\\boxed{}",
        lambda n: "\\boxed{" + "[" * (n // 2) + "}",
        lambda n: "<answer>" + '{"spy": ' * (n // 8),
    ],
)
def test_official_parsing_is_linear_time(make):
    def cost(n: int) -> float:
        text = make(n)
        best = float("inf")
        for _ in range(3):  # best of 3: the machine may be shared
            start = time.perf_counter()
            parse_vote(text, 4, answer_format="boxed", **OFFICIAL)
            parse_clue(text, "boxed", **OFFICIAL)
            best = min(best, time.perf_counter() - start)
        return best

    small, big = cost(200_000), cost(800_000)
    assert big < 2.0, f"{big:.2f}s for 800k characters"
    assert big < 10 * small + 0.05, f"{small:.4f}s -> {big:.4f}s"
