"""The official Vision-Zero code's reading of a completion (`game.answer_parser=official`,
`game.format_flag=official`): answer slot, reasoning, format flag and vote.

Official repository wangqinsi1/Vision-Zero (commit fa3c01c), file
`src/open-r1-multimodal/src/open_r1/clevr_spotdiff_generator.py`; docs/official_code.md cites
the line behind each rule. Its regexes are restated here with `str.find`, so that every
function is linear in the text length (the official lazy regexes scan the rest of the text
from every candidate start):

- answer slot (`official_answer`): the content of the FIRST `\\boxed{...}`, cut at the first
  `}` after it (no brace pairing: `\\boxed{\\text{2}}` gives `\\text{2`); else the first
  `<answer>...</answer>`; else the text after an unclosed `<answer>` up to the next
  `<think>` / `<answer>` tag; else none. Tags and `boxed` are case-sensitive.
- reasoning (`official_reasoning`): the first `<think>...</think>` (even empty); else the text
  before the first boxed answer when there is some; else every non-empty line that holds no
  boxed answer and no prompt phrase ("you are player", ...).
- format flag (`official_format_ok`): reasoning longer than 10 characters and a non-empty
  answer slot, whatever the layout: `<answer>3</answer>` alone passes (its own line is the
  "reasoning").
- vote (`official_vote`): an answer slot equal to "N/A" or "NA" (any case) abstains; else the
  first digit 1-9 standing alone (`\\b[1-9]\\b`: "2 or 3" votes 2, "Player 10" has none);
  else JSON `{"spy": k}` read with Python's int() (`{"spy": 10}` is 10, `{"spy": true}` 1);
  else invalid. A number outside 1..num_players is an invalid vote (official: not counted for
  anyone and scored as wrong, which is what invalid means here).
"""

from __future__ import annotations

import json
import re
from typing import Literal

# The same values as parsing.NA / parsing.Vote (parsing imports this module, not vice versa).
NA: Literal["N/A"] = "N/A"
Vote = int | Literal["N/A"] | None

_BOXED = "\\boxed{"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_PROMPT_PHRASES = (
    "you are player",
    "your task is",
    "game instructions",
    "required output format",
    "example answer",
)
_LONE_DIGIT = re.compile(r"\b([1-9])\b")
MIN_REASONING_CHARS = 11
"""The official flag needs `len(reasoning) > 10`."""


def _first_boxed(text: str) -> tuple[int, int, int] | None:
    """(match start, content start, content end) of the official `\\\\\\\\?boxed\\{(.*?)\\}`:
    the first `\\boxed{` (one more backslash before it joins the match) up to the first `}`
    after it. If that `}` is missing, no later `\\boxed{` has one either."""
    i = text.find(_BOXED)
    if i < 0:
        return None
    close = text.find("}", i + len(_BOXED))
    if close < 0:
        return None
    start = i - 1 if i > 0 and text[i - 1] == "\\" else i
    return start, i + len(_BOXED), close


def official_answer(text: str) -> str | None:
    """The official answer slot's content, stripped, or None when there is none."""
    boxed = _first_boxed(text)
    if boxed is not None:
        return text[boxed[1] : boxed[2]].strip()
    a_open = text.find(_ANSWER_OPEN)
    if a_open < 0:
        return None
    body = a_open + len(_ANSWER_OPEN)
    a_close = text.find(_ANSWER_CLOSE, body)
    if a_close >= 0:
        return text[body:a_close].strip()
    rest = text[body:].strip()  # no `</answer>` follows: cut at the next opening tag
    cuts = [c for c in (rest.find(_THINK_OPEN), rest.find(_ANSWER_OPEN)) if c >= 0]
    return (rest[: min(cuts)] if cuts else rest).strip()


def _line_has_boxed(line: str) -> bool:
    i = line.find(_BOXED)
    return i >= 0 and line.find("}", i + len(_BOXED)) >= 0


def official_reasoning(text: str) -> str:
    """The official reasoning text (`extract_thinking_from_clue`)."""
    t_open = text.find(_THINK_OPEN)
    if t_open >= 0:
        t_close = text.find(_THINK_CLOSE, t_open + len(_THINK_OPEN))
        if t_close >= 0:
            return text[t_open + len(_THINK_OPEN) : t_close].strip()
    boxed = _first_boxed(text)
    if boxed is not None:
        before = text[: boxed[0]].strip()
        if before:
            return before
    kept = []
    for line in text.strip().split("\n"):
        line = line.strip()
        if not line or _line_has_boxed(line):
            continue
        low = line.lower()
        if not any(phrase in low for phrase in _PROMPT_PHRASES):
            kept.append(line)
    return "\n".join(kept)


def official_format_ok(text: str) -> bool:
    """More than 10 characters of reasoning and a non-empty answer slot."""
    return bool(official_answer(text)) and len(official_reasoning(text)) >= MIN_REASONING_CHARS


def _json_spy(answer: str) -> int | None:
    """`int(json.loads(answer)["spy"])`, None wherever the official bare `except` fires."""
    try:
        data = json.loads(answer)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "spy" not in data:
        return None
    try:
        return int(data["spy"])
    except (TypeError, ValueError, OverflowError):
        return None


def official_vote(answer: str | None, num_players: int, allow_na: bool = True) -> Vote:
    """Map an official answer slot to a 0-based seat, "N/A" or None (invalid)."""
    if not answer:
        return None
    if answer.strip().upper() in ("N/A", "NA"):
        return NA if allow_na else None
    digit = _LONE_DIGIT.search(answer)
    player = int(digit.group(1)) if digit is not None else _json_spy(answer)
    if player is None or not 1 <= player <= num_players:
        return None
    return player - 1
