"""Parsing of clues and votes: exact cases, fuzzing, adversarial inputs, linear time."""

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vzero_nemo.game.parsing import (
    MAX_CLUE_CHARS,
    NA,
    parse_clue,
    parse_completion,
    parse_vote,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, vote",
    [
        ("<think>p3 said a cone</think><answer>3</answer>", 2),
        ("<think>x</think>\n<answer> Player 2 </answer>", 1),
        ("<answer>player #4.</answer>", 3),
        ("<answer>Seat 1</answer>", 0),
        ("<answer>Player 3 is the spy</answer>", 2),
        ("<ANSWER>2</Answer>", 1),
        ("<answer>\\boxed{4}</answer>", 3),
        ("reasoning... \\boxed{\\text{2}}", 1),
        ("<answer>N/A</answer>", NA),
        ("<answer>n/a</answer>", NA),
        ("\\boxed{NA}", NA),
        ("<answer>2 or 3</answer>", None),  # ambiguous
        ("<answer>5</answer>", None),  # out of range for 4 players
        ("<answer>0</answer>", None),  # players are 1-based
        ("<answer>-1</answer>", None),
        ("<answer>two</answer>", None),
        ("<answer></answer>", None),
        ("3", None),  # no answer slot
        ("<answer>3", None),  # unclosed
        ("<answer>1</answer> changed my mind <answer>2</answer>", 1),  # last slot wins
        ("\\boxed{1} then \\boxed{2", 0),  # last *balanced* boxed
        ("<answer>３</answer>", None),  # full-width digit is not a player number
        # An answer naming exactly one player is that vote; several players, a hedge, or a
        # number that is not a whole player number is invalid.
        ("<answer>The spy is Player 2</answer>", 1),
        ("<answer>Player 2, whose clue says cone</answer>", 1),
        ("<answer>Player 2 (player 2 said a cone)</answer>", 1),  # the same player twice
        ("<answer>I vote Player3</answer>", 2),
        ("<answer>Player 2, not player 3</answer>", None),
        ("<answer>Player 2 is not the spy</answer>", None),
        ("<answer>Player 2 isn't the spy</answer>", None),
        ("<answer>either 1 or 2</answer>", None),
        ("<answer>N/A or 3</answer>", None),
        ("<answer>none, maybe 3</answer>", None),
        ("<answer>1-4</answer>", None),
        ("<answer>2.5</answer>", None),
        ("<answer>02</answer>", 1),
        ("<answer>Player 02 (seat 2)</answer>", 1),
        ("<answer>The spy is Player 7</answer>", None),  # out of range
        ("<answer>N/A.</answer>", NA),
        ("<answer>None</answer>", NA),
    ],
)
def test_vote_cases(text, vote):
    assert parse_vote(text, num_players=4)[0] == vote


@pytest.mark.parametrize(
    "text, vote",
    [
        ("Player 4's clue is wrong. \\boxed{4}", 3),
        ("reasoning \\boxed{Player 4}", 3),
        ("reasoning \\boxed{The spy is Player 1}", 0),
        ("reasoning \\boxed{2 or 3}", None),
        ("reasoning \\boxed{N/A}", NA),
        ('reasoning \\boxed{{"spy": 5}}', None),  # strict: JSON is not a vote format
    ],
)
def test_vote_cases_boxed_format(text, vote):
    assert parse_vote(text, 4, answer_format="boxed")[0] == vote


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("<think>a</think><answer></answer>", "think_answer"),
        ("<think>a</think><answer>   </answer>", "think_answer"),
        ("<answer></answer>", "answer"),
        ("reason \\boxed{}", "boxed"),
        ("reason \\boxed{ }", "boxed"),
    ],
)
def test_empty_answer_earns_no_format_credit(text, fmt):
    parsed = parse_completion(text, fmt)
    assert parsed.answer == "" and parsed.format_ok is False


def test_na_is_invalid_when_not_allowed():
    assert parse_vote("<answer>N/A</answer>", 4, allow_na=False)[0] is None


def test_clue_slot_reasoning_and_format():
    clue, parsed = parse_clue(
        "<think> I see a cube </think><answer>  small \n red   cube </answer>"
    )
    assert clue == "small red cube"
    assert parsed.reasoning == "I see a cube"
    assert parsed.format_ok
    clue, parsed = parse_clue("Looking closely. \\boxed{a {nested} thing}", "boxed")
    assert clue == "a {nested} thing" and parsed.format_ok
    assert parsed.reasoning == "Looking closely."
    # Without <think>, reasoning is the text before the slot.
    assert parse_clue("I think <answer>blue</answer>")[1].reasoning == "I think"
    assert parse_clue("<answer>   </answer>")[0] is None
    assert parse_clue("<answer>" + "x" * (MAX_CLUE_CHARS + 1) + "</answer>")[0] is None
    assert parse_clue("<answer>" + "x" * MAX_CLUE_CHARS + "</answer>")[0] == "x" * MAX_CLUE_CHARS


@pytest.mark.parametrize(
    "text, fmt, ok",
    [
        ("<think>a</think><answer>b</answer>", "think_answer", True),
        ("  <think>a</think>\n\n<answer>b</answer>\n", "think_answer", True),
        ("<answer>b</answer>", "think_answer", False),  # no think
        ("<think>a</think><answer>b</answer> trailing", "think_answer", False),
        ("<think>a</think><answer>b</answer><answer>c</answer>", "think_answer", False),
        ("<think>a<think>b</think><answer>c</answer>", "think_answer", False),
        (" <answer>red cube</answer>\n", "answer", True),
        ("<think>a</think><answer>b</answer>", "answer", False),  # asked for the answer alone
        ("<answer>b</answer> trailing", "answer", False),
        ("<answer>b</answer><answer>c</answer>", "answer", False),
        ("b", "answer", False),
        ("reason \\boxed{3}", "boxed", True),
        ("reason \\boxed{3} \\boxed{4}", "boxed", False),
        ("<answer>\\boxed{3}</answer>", "boxed", False),
        ("reason only", "boxed", False),
    ],
)
def test_format_ok(text, fmt, ok):
    assert parse_completion(text, fmt).format_ok is ok


def _check_sane(text: str, num_players: int = 4) -> None:
    vote, parsed = parse_vote(text, num_players)
    assert vote is None or vote == NA or (isinstance(vote, int) and 0 <= vote < num_players)
    assert isinstance(parsed.reasoning, str)
    assert isinstance(parsed.format_ok, bool)
    if parsed.answer is not None:
        assert parsed.answer == parsed.answer.strip()
    if isinstance(vote, int):
        assert str(vote + 1) in parsed.answer
    low = text.lower()
    if "answer>" not in low and "boxed{" not in text:
        assert parsed.answer is None and vote is None
    clue, _ = parse_clue(text)
    assert clue is None or (0 < len(clue) <= MAX_CLUE_CHARS and clue == " ".join(clue.split()))


_PIECES = [
    "<answer>", "</answer>", "<ANSWER>", "<think>", "</think>", "\\boxed{", "{", "}", "N/A",
    "3", "2", "Player ", " ", "\n", "x", "İ", "ß", "ﬁ", "\u202e", "\x00", "\ud800", "😀",
    "\\text{", "<answer", "answer>", "<", ">",
]  # fmt: skip


def test_fuzz_thousands_of_tag_soups_never_raise():
    rng = random.Random(0)
    for _ in range(5000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        _check_sane(text, rng.randint(3, 9))


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_unicode_never_raises(text):
    _check_sane(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="<\\")), st.integers(1, 4))
def test_junk_then_answer_is_read(prefix, player):
    # Any tag-free junk before a well-formed slot does not change the vote.
    assert parse_vote(prefix + f"<answer>{player}</answer>", 4)[0] == player - 1


def test_unicode_that_changes_length_when_lowered_keeps_offsets():
    # "İ".lower() is two characters; slot offsets must still point into the original text.
    text = "İİİ <think>ńote</think><answer>İ red cube</answer>"
    clue, parsed = parse_clue(text)
    assert clue == "İ red cube" and parsed.reasoning == "ńote"


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "{" * n,
        lambda n: "\\boxed{" * (n // 7),
        lambda n: "}" * (n // 2) + "\\boxed{" * (n // 14),
        lambda n: "<answer>" * (n // 8),
        lambda n: "</answer>" * (n // 9),
        lambda n: "<think>" * (n // 7) + "<answer>1</answer>",
        lambda n: "x" * n + "<answer>" + "2" * n + "</answer>",
        lambda n: "\\boxed{{" * (n // 8) + "}" * (n // 16),
    ],
)
def test_huge_adversarial_inputs_parse_in_linear_time(make):
    def cost(n: int) -> float:
        text = make(n)
        start = time.perf_counter()
        parse_vote(text, 4)
        parse_clue(text)
        return time.perf_counter() - start

    small, big = cost(200_000), cost(800_000)
    assert big < 2.0, f"{big:.2f}s for 800k characters"
    # 4x the input may cost ~4x, never ~16x (quadratic); slack for timer noise.
    assert big < 10 * small + 0.05, f"{small:.4f}s -> {big:.4f}s"
