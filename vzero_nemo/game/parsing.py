"""Parsing of model completions into clues and votes. Never raises on any model text.

A completion is free text. Its *answer slot* is, in order of preference:

1. the content of the LAST complete `<answer>...</answer>` pair (tags matched
   case-insensitively; a `\\boxed{X}` inside the slot is unwrapped to `X`);
2. otherwise the content of the LAST balanced `\\boxed{...}`;
3. otherwise there is no answer (None).

Its *reasoning* is the content of the first `<think>...</think>` block, or, without one, the
text before the answer slot. Reasoning is what a seat later sees of its own earlier turns.

`format_ok` says whether the completion follows the format the prompt asked for exactly:
`think_answer`: `<think>R</think>` then `<answer>A</answer>` and nothing else (whitespace
aside), one of each; `answer` (compact prompts that ask for the answer alone):
`<answer>A</answer>` and nothing else; `boxed`: exactly one balanced `\\boxed{}` and no
`<answer>` tag.

Everything here is linear in the text length: tags are found with `str.find`/`rfind`, braces
are paired in one pass, and the only regexes run on short, bounded strings. Huge or hostile
inputs (megabytes, unbalanced braces, thousands of tags) therefore parse in milliseconds.

Votes name players 1..num_players in text ("3", "Player 3", "seat #3", "3.", "Player 3 is the
spy"); `parse_vote` returns the 0-based seat, the string "N/A", or None (invalid: junk, an
ambiguous answer such as "2 or 3", a number out of range, or N/A when N/A is not allowed).
"""

from __future__ import annotations

import re
import string
from typing import Literal, NamedTuple

AnswerFormat = Literal["think_answer", "answer", "boxed"]
Vote = int | Literal["N/A"] | None
NA: Literal["N/A"] = "N/A"

MAX_CLUE_CHARS = 200
"""A clue longer than this (after whitespace normalisation) is unparseable: a clue is one short
description, and other seats' prompts must stay bounded."""
MAX_VOTE_CHARS = 64
"""A vote answer longer than this is invalid (a vote is a number or N/A)."""

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_BOXED = "\\boxed{"
# Lower-case ASCII letters only, so that the lowered text keeps every index of the original
# (str.lower() can change the length of some non-ASCII strings).
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_BRACE = re.compile(r"[{}]")
_NA_WORDS = frozenset({"n/a", "na", "n.a.", "n.a", "none", "n / a"})
_VOTE = re.compile(r"(?:player|seat)?\s*(?:no\.|number)?\s*#?\s*([0-9]{1,4})(?:\s+is\s+the\s+spy)?")
_STRIP_CHARS = " \t\r\n.,;:!?*'\"`()[]"
_WRAPPERS = ("\\text{", "\\mathrm{", "\\textbf{")


class ParsedCompletion(NamedTuple):
    """answer: the answer slot's content (stripped) or None; reasoning: see module docstring;
    format_ok: the completion follows the requested format exactly."""

    answer: str | None
    reasoning: str
    format_ok: bool


def _matching_brace(text: str, open_index: int) -> int:
    """Index of the `}` closing the `{` at open_index, or -1 (one forward pass)."""
    depth = 0
    for m in _BRACE.finditer(text, open_index):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return m.start()
    return -1


def _last_boxed(text: str) -> tuple[int, int, int] | None:
    """(start of `\\boxed{`, content start, content end) of the last balanced boxed, or None."""
    last = text.rfind(_BOXED)
    if last < 0:
        return None
    close = _matching_brace(text, last + len(_BOXED) - 1)
    if close >= 0:
        return last, last + len(_BOXED), close
    # The last one is unbalanced: pair every brace once, then take the last boxed that closes.
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    pos = last
    while pos >= 0:
        brace = pos + len(_BOXED) - 1
        if brace in closing:
            return pos, brace + 1, closing[brace]
        pos = text.rfind(_BOXED, 0, pos)
    return None


def _count_boxed(text: str) -> int:
    return text.count(_BOXED)


def _unwrap_boxed(content: str) -> str:
    stripped = content.strip()
    if stripped.startswith(_BOXED):
        close = _matching_brace(stripped, len(_BOXED) - 1)
        if close == len(stripped) - 1:
            return stripped[len(_BOXED) : close]
    return content


def _think_answer_format_ok(low: str, a_open: int, a_close: int) -> bool:
    """`<think>R</think> <answer>A</answer>` exactly, one tag of each kind."""
    head = low[:a_open].strip()
    tail = low[a_close + len(_ANSWER_CLOSE) :].strip()
    if tail or not head.startswith(_THINK_OPEN) or not head.endswith(_THINK_CLOSE):
        return False
    tags = (_THINK_OPEN, _THINK_CLOSE, _ANSWER_OPEN, _ANSWER_CLOSE)
    return all(low.count(tag) == 1 for tag in tags)


def parse_completion(text: str, answer_format: AnswerFormat = "think_answer") -> ParsedCompletion:
    """Split a completion into answer slot, reasoning and format flag (see module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"completion must be str, got {type(text).__name__}")
    low = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    answer: str | None = None
    slot_start = -1
    a_open = a_close = -1
    a_close = low.rfind(_ANSWER_CLOSE)
    if a_close >= 0:
        a_open = low.rfind(_ANSWER_OPEN, 0, a_close)
    if a_open >= 0:
        slot_start = a_open
        answer = _unwrap_boxed(text[a_open + len(_ANSWER_OPEN) : a_close])
    else:
        boxed = _last_boxed(text)
        if boxed is not None:
            slot_start, content_start, content_end = boxed
            answer = text[content_start:content_end]
    if answer is not None:
        answer = answer.strip()

    t_open = low.find(_THINK_OPEN)
    t_close = low.find(_THINK_CLOSE, t_open + 1) if t_open >= 0 else -1
    if t_open >= 0 and t_close >= 0:
        reasoning = text[t_open + len(_THINK_OPEN) : t_close].strip()
    elif slot_start >= 0:
        reasoning = text[:slot_start].replace(_THINK_OPEN, "").strip()
    else:
        reasoning = text.strip()

    if answer_format == "think_answer":
        format_ok = a_open >= 0 and _think_answer_format_ok(low, a_open, a_close)
    elif answer_format == "answer":
        format_ok = (
            a_open >= 0
            and not low[:a_open].strip()
            and not low[a_close + len(_ANSWER_CLOSE) :].strip()
            and low.count(_ANSWER_OPEN) == 1
        )
    else:
        format_ok = (
            a_open < 0
            and answer is not None
            and _count_boxed(text) == 1
            and low.find(_ANSWER_OPEN) < 0
        )
    return ParsedCompletion(answer=answer, reasoning=reasoning, format_ok=format_ok)


def normalize_clue(answer: str | None) -> str | None:
    """Whitespace-collapsed clue text, or None when empty or longer than MAX_CLUE_CHARS."""
    if answer is None:
        return None
    # Bound the work before splitting: anything much longer is rejected anyway.
    if len(answer) > 8 * MAX_CLUE_CHARS:
        return None
    clue = " ".join(answer.split())
    if not clue or len(clue) > MAX_CLUE_CHARS:
        return None
    return clue


def parse_clue(
    text: str, answer_format: AnswerFormat = "think_answer"
) -> tuple[str | None, ParsedCompletion]:
    """(clue text or None if unparseable, the parsed completion)."""
    parsed = parse_completion(text, answer_format)
    return normalize_clue(parsed.answer), parsed


def _normalize_vote_text(answer: str) -> str:
    text = answer.translate(_ASCII_LOWER).strip(_STRIP_CHARS)
    for wrapper in _WRAPPERS:
        if text.startswith(wrapper) and text.endswith("}"):
            text = text[len(wrapper) : -1].strip(_STRIP_CHARS)
    return " ".join(text.split())


def vote_from_answer(answer: str | None, num_players: int, allow_na: bool = True) -> Vote:
    """Map an answer slot to a 0-based seat, "N/A" or None (invalid); see module docstring."""
    if answer is None or len(answer) > MAX_VOTE_CHARS:
        return None
    text = _normalize_vote_text(answer)
    if text in _NA_WORDS:
        return NA if allow_na else None
    m = _VOTE.fullmatch(text)
    if m is None:
        return None
    player = int(m.group(1))
    if not 1 <= player <= num_players:
        return None
    return player - 1


def parse_vote(
    text: str,
    num_players: int,
    allow_na: bool = True,
    answer_format: AnswerFormat = "think_answer",
) -> tuple[Vote, ParsedCompletion]:
    """(0-based seat | "N/A" | None for invalid, the parsed completion)."""
    if num_players < 1:
        raise ValueError(f"num_players={num_players} must be >= 1")
    parsed = parse_completion(text, answer_format)
    return vote_from_answer(parsed.answer, num_players, allow_na), parsed
