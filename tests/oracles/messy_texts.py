"""Messy model outputs for differential tests: missing or unclosed tags, several boxes,
doubled backslashes, JSON votes, hedges, N/A variants, numbers out of range, prompt echoes,
stray braces and non-ASCII characters. One seeded `random.Random` drives everything."""

from __future__ import annotations

import random

_REASONING = (
    "",
    "ok",
    "0123456789",  # exactly 10 characters: one short of the official format flag
    "0123456789a",
    "Player 2 said a red cube, but I see a blue one.",
    "Round 1:\nPlayer 1: red cube\nPlayer 2: blue sphere",
    "You are player 1 of 4.\nExample answer: \\boxed{1}",
    "Your task is to find the spy.",
    "Players 1 and 3 agree; player 4 is odd.",
    "hmm {nested} braces",
    "İstanbul ß ﬁ 😀",
    "   \n  ",
)
_NA = ("N/A", "n/a", "NA", "na", "N/A.", "none", "None", "Unknown", "", "  ", "N / A")
_ODD = ("٣", "３", "Player ten", "two", "P3", "3rd", "#2", "-2", "2.5", "1-4", "seat 2")


def _answer(rng: random.Random) -> str:
    k, j = rng.randint(0, 12), rng.randint(1, 6)
    forms = (
        lambda: str(k),
        lambda: f"Player {k}",
        lambda: f"The spy is Player {k}",
        lambda: f"Player {k} is the spy",
        lambda: f"{k} or {j}",
        lambda: f"either {k} or {j}",
        lambda: f"Player {k}, not Player {j}",
        lambda: f"Player {k} is not the spy",
        lambda: rng.choice(_NA),
        lambda: rng.choice(_ODD),
        lambda: f"\\text{{{k}}}",
        lambda: f'{{"spy": {k}}}',
        lambda: f'{{"spy": "{k}"}}',
        lambda: f'{{"spy": {k + 9}}}',
        lambda: rng.choice(('{"spy": true}', '{"spy": null}', '{"spy": "N/A"}', '{"spy": 3.7}')),
        lambda: rng.choice(('{"player": 3}', "[3]", '{"spy": [3]}', '{"spy": "٣"}')),
        lambda: f'{{"spy": {k}, "reasoning": "clue {j} is off"}}',
    )
    return rng.choice(forms)()


def _layout(rng: random.Random, r: str, x: str, x2: str) -> str:
    layouts = (
        lambda: f"{r} \\boxed{{{x}}}",
        lambda: f"{r}\n\\\\boxed{{{x}}}",
        lambda: f"<think>{r}</think><answer>{x}</answer>",
        lambda: f"<think>{r}</think>\n\\boxed{{{x}}}",
        lambda: f"<think>{r}</think><answer>{x}",
        lambda: f"{r}<answer>{x}</answer>",
        lambda: f"\\boxed{{{x}}}\n{r}",
        lambda: f"\\boxed{{{x}}} {r}",
        lambda: f"{r} \\boxed{{{x}}} then \\boxed{{{x2}}}",
        lambda: f"<answer>\\boxed{{{x}}}</answer>",
        lambda: f"{r} \\boxed{{{x}",
        lambda: f"<THINK>{r}</THINK><ANSWER>{x}</ANSWER>",
        lambda: r,
        lambda: f"<think>{r}<answer>{x}</answer>",
        lambda: f"{r} <answer>{x}</answer> <answer>{x2}</answer>",
        lambda: f"<answer>{x} <think>{r}",
        lambda: f"</answer>{r}<answer>{x}",
        lambda: f"{r} \\boxed{{\\boxed{{{x}}}}}",
    )
    return rng.choice(layouts)()


def messy_vote(rng: random.Random) -> str:
    """One vote completion; sometimes a stray character is inserted anywhere."""
    text = _layout(rng, rng.choice(_REASONING), _answer(rng), _answer(rng))
    if rng.random() < 0.15:
        i = rng.randint(0, len(text))
        text = text[:i] + rng.choice("{}<>\\\n İ") + text[i:]
    return text


def messy_clue(rng: random.Random) -> str:
    """One clue completion (clue rewards never read it; it exercises clue parsing)."""
    clue = rng.choice(("red cube", "", "a {big} sphere", "x" * 300, "blue", "Player 2 lies"))
    return _layout(rng, rng.choice(_REASONING), clue, "green cone")
