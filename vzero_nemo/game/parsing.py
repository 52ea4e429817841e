"""Parsing of model completions into clues and votes. Never raises on any model text.

Two readings, chosen by `game.answer_parser` and `game.format_flag`: `strict` (ours, default,
this module) and `official` (the official code's, `vzero_nemo.game.parsing_official`).

A completion is free text. Its strict *answer slot* is, in order of preference:

1. the content of the LAST complete `<answer>...</answer>` pair (tags matched
   case-insensitively; a `\\boxed{X}` inside the slot is unwrapped to `X`);
2. otherwise the content of the LAST balanced `\\boxed{...}`;
3. otherwise there is no answer (None).

Its *reasoning* is the content of the first `<think>...</think>` block, or, without one, the
text before the answer slot. Reasoning is what a seat later sees of its own earlier turns.

Strict `format_ok` says whether the completion follows the format the prompt asked for
exactly, with a non-empty answer: `think_answer`: `<think>R</think>` then `<answer>A</answer>`
and nothing else (whitespace aside), one of each; `answer` (compact prompts that ask for the
answer alone): `<answer>A</answer>` and nothing else; `boxed`: exactly one balanced `\\boxed{}`
and no `<answer>` tag. An empty answer (`<answer></answer>`) never earns format credit.

Everything here is linear in the text length: tags are found with `str.find`/`rfind`, braces
are paired in one pass, and the only regexes run on short, bounded strings. Huge or hostile
inputs (megabytes, unbalanced braces, thousands of tags) therefore parse in milliseconds.

A strict vote names exactly one player 1..num_players: the answer holds exactly one number,
a whole number in range ("3", "Player 3", "seat #3", "The spy is Player 3", `\\text{3}`), and
no hedge ("not", "or", "either", "neither", "nor", "except", an N/A word). "N/A", "NA",
"n.a." and "none" alone abstain. `parse_vote` returns the 0-based seat, the string "N/A", or
None (invalid: junk, several players such as "2 or 3", a number out of range, signed or
decimal numbers, or N/A when N/A is not allowed).
"""

from __future__ import annotations

import re
import string
from typing import Literal, NamedTuple

from vzero_nemo.game import parsing_official as official

AnswerFormat = Literal["think_answer", "answer", "boxed"]
AnswerParser = Literal["strict", "official"]
FormatFlag = Literal["strict", "official"]
ANSWER_PARSERS: tuple[str, ...] = ("strict", "official")
FORMAT_FLAGS: tuple[str, ...] = ("strict", "official")
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
# Numbers as written, sign and decimals included, so that "-1" and "2.5" are not players.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_HEDGE = re.compile(r"\b(?:not|or|either|neither|nor|except|na|none)\b|n't\b|n/a|n\.a\b")
_STRIP_CHARS = " \t\r\n.,;:!?*'\"`()[]"
_WRAPPERS = ("\\text{", "\\mathrm{", "\\textbf{")


class ParsedCompletion(NamedTuple):
    """answer: the answer slot's content (stripped) or None; reasoning: see module docstring;
    format_ok: the completion is well formatted (`strict`: the requested layout exactly, with
    a non-empty answer; `official`: see parsing_official)."""

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


class _Slot(NamedTuple):
    """The strict answer slot: content (stripped) or None, where it starts in the text (-1
    without a slot), and the `<answer>` / `</answer>` offsets (-1 when not a tag pair)."""

    answer: str | None
    start: int
    a_open: int
    a_close: int


def _strict_slot(text: str, low: str) -> _Slot:
    a_open = -1
    a_close = low.rfind(_ANSWER_CLOSE)
    if a_close >= 0:
        a_open = low.rfind(_ANSWER_OPEN, 0, a_close)
    if a_open >= 0:
        answer = _unwrap_boxed(text[a_open + len(_ANSWER_OPEN) : a_close]).strip()
        return _Slot(answer, a_open, a_open, a_close)
    boxed = _last_boxed(text)
    if boxed is None:
        return _Slot(None, -1, -1, -1)
    start, content_start, content_end = boxed
    return _Slot(text[content_start:content_end].strip(), start, -1, -1)


def _strict_reasoning(text: str, low: str, slot_start: int) -> str:
    t_open = low.find(_THINK_OPEN)
    t_close = low.find(_THINK_CLOSE, t_open + 1) if t_open >= 0 else -1
    if t_open >= 0 and t_close >= 0:
        return text[t_open + len(_THINK_OPEN) : t_close].strip()
    if slot_start >= 0:
        return text[:slot_start].replace(_THINK_OPEN, "").strip()
    return text.strip()


def _strict_format_ok(text: str, low: str, slot: _Slot, answer_format: AnswerFormat) -> bool:
    """The requested layout exactly, with a non-empty answer (see module docstring)."""
    if not slot.answer:
        return False
    a_open, a_close = slot.a_open, slot.a_close
    if answer_format == "think_answer":
        return a_open >= 0 and _think_answer_format_ok(low, a_open, a_close)
    if answer_format == "answer":
        return (
            a_open >= 0
            and not low[:a_open].strip()
            and not low[a_close + len(_ANSWER_CLOSE) :].strip()
            and low.count(_ANSWER_OPEN) == 1
        )
    return a_open < 0 and _count_boxed(text) == 1 and low.find(_ANSWER_OPEN) < 0


def _check_choices(answer_parser: str, format_flag: str) -> None:
    if answer_parser not in ANSWER_PARSERS:
        raise ValueError(f"game.answer_parser={answer_parser!r}; use one of {ANSWER_PARSERS}")
    if format_flag not in FORMAT_FLAGS:
        raise ValueError(f"game.format_flag={format_flag!r}; use one of {FORMAT_FLAGS}")


def parse_completion(
    text: str,
    answer_format: AnswerFormat = "think_answer",
    *,
    answer_parser: AnswerParser = "strict",
    format_flag: FormatFlag = "strict",
) -> ParsedCompletion:
    """Split a completion into answer slot, reasoning and format flag (see module docstring;
    `official` choices: `vzero_nemo.game.parsing_official`)."""
    if not isinstance(text, str):
        raise TypeError(f"completion must be str, got {type(text).__name__}")
    _check_choices(answer_parser, format_flag)
    low = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    slot = _strict_slot(text, low)
    if answer_parser == "strict":
        answer, reasoning = slot.answer, _strict_reasoning(text, low, slot.start)
    else:
        answer, reasoning = official.official_answer(text), official.official_reasoning(text)
    if format_flag == "strict":
        format_ok = _strict_format_ok(text, low, slot, answer_format)
    else:
        format_ok = official.official_format_ok(text)
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
    text: str,
    answer_format: AnswerFormat = "think_answer",
    *,
    answer_parser: AnswerParser = "strict",
    format_flag: FormatFlag = "strict",
) -> tuple[str | None, ParsedCompletion]:
    """(clue text or None if unparseable, the parsed completion)."""
    parsed = parse_completion(
        text, answer_format, answer_parser=answer_parser, format_flag=format_flag
    )
    return normalize_clue(parsed.answer), parsed


def _normalize_vote_text(answer: str) -> str:
    text = answer.translate(_ASCII_LOWER).strip(_STRIP_CHARS)
    for wrapper in _WRAPPERS:
        if text.startswith(wrapper) and text.endswith("}"):
            text = text[len(wrapper) : -1].strip(_STRIP_CHARS)
    return " ".join(text.split())


def _strict_vote(answer: str | None, num_players: int, allow_na: bool) -> Vote:
    if answer is None or len(answer) > MAX_VOTE_CHARS:
        return None
    text = _normalize_vote_text(answer)
    if text in _NA_WORDS:
        return NA if allow_na else None
    # Whole numbers by value ("02" and "2" name the same player); signed or decimal as text.
    numbers = {int(n) if n.isdigit() else n for n in _NUMBER.findall(text)}
    if len(numbers) != 1 or _HEDGE.search(text):
        return None  # no player, several players, or a hedge ("not 2", "2 or N/A")
    (player,) = numbers
    if not isinstance(player, int):
        return None  # signed or decimal: not a player number
    return player - 1 if 1 <= player <= num_players else None


def vote_from_answer(
    answer: str | None,
    num_players: int,
    allow_na: bool = True,
    answer_parser: AnswerParser = "strict",
) -> Vote:
    """Map an answer slot to a 0-based seat, "N/A" or None (invalid); see module docstring."""
    _check_choices(answer_parser, FORMAT_FLAGS[0])
    if answer_parser == "official":
        return official.official_vote(answer, num_players, allow_na)
    return _strict_vote(answer, num_players, allow_na)


def parse_vote(
    text: str,
    num_players: int,
    allow_na: bool = True,
    answer_format: AnswerFormat = "think_answer",
    *,
    answer_parser: AnswerParser = "strict",
    format_flag: FormatFlag = "strict",
) -> tuple[Vote, ParsedCompletion]:
    """(0-based seat | "N/A" | None for invalid, the parsed completion)."""
    if num_players < 1:
        raise ValueError(f"num_players={num_players} must be >= 1")
    parsed = parse_completion(
        text, answer_format, answer_parser=answer_parser, format_flag=format_flag
    )
    return vote_from_answer(parsed.answer, num_players, allow_na, answer_parser), parsed
