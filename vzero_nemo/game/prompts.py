"""Prompt templates: what each seat is told, per domain and `prompt_style`.

Every prompt is an HF-style chat list with exactly one `{"type": "image"}` entry; the model
side substitutes the image the request names. Styles:

- `full`: a system message with the paper's game rules, then a user message with the seat's
  role, the spy's hint (what kind of difference to expect in this domain), every earlier clue
  (answer text only), the seat's own earlier reasoning, and the answer-format instruction.
- `compact`: one short user message with the same information, for tiny CPU models, e.g.
  "You are player 3 of 4, civilian. Player 1 said: red cube. Player 2 said: blue sphere.
  Describe one object. Use <answer></answer>." (with `game.clue_plan` the clue is asked
  for as "<think>agree or new</think><answer></answer>": a one-word plan, then the clue).

Players are numbered 1..N in all text (seat + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from vzero_nemo.config import GameConfig
from vzero_nemo.data.schema import Truth
from vzero_nemo.game.parsing import AnswerFormat
from vzero_nemo.game.roles import Clue, Role

Messages = list[dict[str, Any]]

SPY_HINTS_FULL = {
    "clevr": "In your image, two objects differ from the civilians' image: each has a "
    "different color and a different shape (same size, material and position).",
    "chart": "Your chart differs from the civilians' chart: two of its values or attributes "
    "are swapped, or one value is changed.",
    "real": "Your photo differs from the civilians' photo by one small local edit: something "
    "may be recolored, removed, added or moved.",
}
SPY_HINTS_COMPACT = {
    "clevr": " Your image: 2 objects differ in color and shape.",
    "chart": " Your chart: some values differ.",
    "real": " Your photo: one local edit.",
}
THINGS = {"clevr": "object", "chart": "chart detail", "real": "photo detail"}
BLANK_HINT_FULL = (
    "Your image is blank: you cannot see the civilians' image. Listen to the clues and blend in."
)
BLANK_HINT_COMPACT = " Your image is blank."
PLAN_AGREE, PLAN_NEW = "agree", "new"
"""The two plans of a clue with `game.clue_plan` (its `<think>` content)."""


def plan_of(reasoning: str | None) -> str | None:
    """The plan a clue's reasoning states (`PLAN_AGREE` / `PLAN_NEW`, case and surrounding
    space ignored), or None when it is not the plan word alone."""
    word = (reasoning or "").strip().lower()
    return word if word in (PLAN_AGREE, PLAN_NEW) else None


PLAN_FORMAT_COMPACT = f" Use <think>{PLAN_AGREE} or {PLAN_NEW}</think><answer></answer>."
"""The compact clue instruction with `game.clue_plan`: a one-word plan, then the clue."""


def _check_domain(domain: str) -> None:
    if domain not in SPY_HINTS_FULL:
        raise ValueError(f"unknown domain {domain!r}; expected one of {list(SPY_HINTS_FULL)}")


def _format_full(answer_format: str, what: str, examples: str = "") -> str:
    if answer_format == "boxed":  # the official code's wording
        return (
            "First, conduct your private step-by-step reasoning. Then, put your final "
            f"{what} inside \\boxed{{}}.{examples}"
        )
    return (
        "First think about it inside <think> </think> tags, then give your final "
        f"{what} inside <answer> </answer> tags: <think>...</think><answer>...</answer>."
    )


def _format_compact(answer_format: str) -> str:
    return " Use \\boxed{}." if answer_format == "boxed" else " Use <answer></answer>."


@lru_cache(maxsize=64)
def system_prompt(num_players: int, num_spies: int, num_clue_rounds: int, vote_mode: str) -> str:
    """The game rules (full style)."""
    spies = "the spy receives" if num_spies == 1 else f"the {num_spies} spies receive"
    voters = (
        "an observer who sees the civilians' image votes"
        if vote_mode == "observer"
        else "the civilians vote"
    )
    return (
        f'You are playing "Who Is the Spy?" with {num_players} players, numbered Player 1 to '
        f"Player {num_players}. Each player receives an image. The civilians all receive the "
        f"same image; {spies} a slightly different one. In each of {num_clue_rounds} rounds, "
        "every player in turn gives one short clue describing their own image. Civilians "
        "describe their image so that the spy stands out, without revealing so much that "
        "the spy can blend in. The spy describes something that should fit the civilians' "
        "image, to avoid being identified. After the clue rounds, "
        f"{voters} on who the spy is; N/A means undecided."
    )


def _quote(text: str) -> str:
    """Model-written text as it goes into another prompt: special-token markup ("<|...|>")
    is broken up, so a clue can never become a control or image token of the next prompt."""
    return text.replace("<|", "< |")


def _history_full(clues: Sequence[Clue]) -> str:
    if not clues:
        return "No clues yet: you speak first."
    lines = [f"Round {c.round + 1}, Player {c.seat + 1}: {_quote(c.text)}" for c in clues]
    return "Clues so far:\n" + "\n".join(lines)


def _history_compact(clues: Sequence[Clue]) -> str:
    return "".join(f" Player {c.seat + 1} said: {_quote(c.text)}." for c in clues)


def _notes_full(own_notes: Sequence[str]) -> str:
    if not own_notes:
        return ""
    lines = [f"Round {i + 1}: {_quote(note) or '(none)'}" for i, note in enumerate(own_notes)]
    return "\nYour own earlier reasoning (private, only you see it):\n" + "\n".join(lines)


def _notes_compact(own_notes: Sequence[str]) -> str:
    return "".join(f" You thought: {_quote(note)}" for note in own_notes if note)


def _spy_hint(domain: str, spy_image: str, compact: bool) -> str:
    if spy_image == "blank":
        return BLANK_HINT_COMPACT if compact else BLANK_HINT_FULL
    return SPY_HINTS_COMPACT[domain] if compact else SPY_HINTS_FULL[domain]


def edited_parts(truth: Truth) -> str:
    """What was edited in the spy's image, as the spy is told with `game.spy_knows_edit`:
    clevr: each edited object as it looks in the spy's image ("blue sphere, red cube");
    other domains: each edit's kind and box ("recolor at [10, 20, 40, 60]")."""
    if truth.domain == "clevr":
        by_id = {o.get("id"): o for o in truth.modified.get("objects", [])}
        parts = []
        for change in truth.changes:
            obj = by_id.get(change.target)
            if obj is None:
                raise ValueError(
                    f"clevr change {change.kind!r} targets object {change.target!r}, which the "
                    "modified scene does not hold"
                )
            parts.append(f"{obj['color']} {obj['shape']}")
        return ", ".join(parts)
    return ", ".join(f"{c.kind} at {list(c.box)}" for c in truth.changes)


def messages(system: str | None, user_text: str) -> Messages:
    """HF chat list: [system?, user(image, text)], fresh containers on every call."""
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]}
    if system is None:
        return [user]
    return [{"role": "system", "content": system}, user]


class PromptBuilder:
    """Builds the user text of clue and vote prompts for one GameConfig. Everything that does
    not depend on the turn is prepared once here; the env calls it for every request."""

    def __init__(self, cfg: GameConfig) -> None:
        self.cfg = cfg
        self.compact = cfg.prompt_style == "compact"
        # What a clue prompt asks for: compact prompts ask for the answer tag alone.
        self.clue_format: AnswerFormat = (
            "answer"
            if self.compact and cfg.answer_format == "think_answer" and not cfg.clue_plan
            else cfg.answer_format
        )
        self.system = (
            None
            if self.compact
            else system_prompt(cfg.num_players, cfg.num_spies, cfg.num_clue_rounds, cfg.vote_mode)
        )
        n = cfg.num_players
        if self.compact:
            fmt = _format_compact(cfg.answer_format)
            clue_fmt = PLAN_FORMAT_COMPACT if cfg.clue_plan else fmt
            self._clue_tail = {d: f" Describe one {THINGS[d]}.{clue_fmt}" for d in THINGS}
            choices = f"1-{n} or N/A" if cfg.allow_na else f"1-{n}"
            self._vote_tail = f" Who is the spy? Answer {choices}.{fmt}"
        else:
            fmt = _format_full(cfg.answer_format, "clue")
            self._clue_tail = {
                d: f" Give one short clue that describes one {THINGS[d]} in your image; do not "
                f"repeat an earlier clue. {fmt}"
                for d in THINGS
            }
            na = " or N/A if you cannot tell" if cfg.allow_na else ""
            examples = " Example answer: \\boxed{1}; \\boxed{2}" + (
                "; \\boxed{N/A}." if cfg.allow_na else "."
            )
            self._vote_tail = (
                "\nCompare each clue with your image and decide which player is the spy. "
                + _format_full(
                    cfg.answer_format, f"answer (the spy's player number, 1-{n}{na})", examples
                )
            )

    def edited_note(self, truth: Truth, role: Role) -> str:
        """The `edited` argument of `clue_text`: `edited_parts` of the pair for the spy when
        `game.spy_knows_edit` is on, else empty."""
        return edited_parts(truth) if self.cfg.spy_knows_edit and role == "spy" else ""

    def clue_text(
        self,
        domain: str,
        seat: int,
        role: Role,
        round_index: int,
        clues: Sequence[Clue],
        own_notes: Sequence[str],
        edited: str = "",
    ) -> str:
        """User text of a clue turn: `seat` (0-based) speaks in round `round_index` (0-based).
        `edited` (`game.spy_knows_edit`, spy turns only): `edited_parts` of the pair."""
        _check_domain(domain)
        cfg = self.cfg
        if edited and role != "spy":
            raise ValueError("only the spy is told what was edited")
        if self.compact:
            hint = _spy_hint(domain, cfg.spy_image, True) if role == "spy" else ""
            hint += f" Edited: {edited}." if edited else ""
            return (
                f"You are player {seat + 1} of {cfg.num_players}, {role}.{hint}"
                f"{_history_compact(clues)}{_notes_compact(own_notes)}{self._clue_tail[domain]}"
            )
        if role == "spy":
            role_text = "You are the spy. " + _spy_hint(domain, cfg.spy_image, False)
            if edited:
                role_text += f" The edited parts of your image: {edited}."
        else:
            role_text = "You are a civilian. You do not know who the spy is."
        return (
            f"You are Player {seat + 1}. {role_text}\n{_history_full(clues)}"
            f"{_notes_full(own_notes)}\nIt is round {round_index + 1} of {cfg.num_clue_rounds}."
            f"{self._clue_tail[domain]}"
        )

    @property
    def vote_tail(self) -> str:
        """The question that ends every vote prompt ("Who is the spy? ...")."""
        return self._vote_tail

    def vote_text(
        self, domain: str, seat: int, role: Role, clues: Sequence[Clue], own_notes: Sequence[str]
    ) -> str:
        """User text of a vote by the observer (seat -1) or a civilian voter."""
        _check_domain(domain)
        n = self.cfg.num_players
        if self.compact:
            if role == "observer":
                who = f"You are the observer, {n} players."
            else:
                who = f"You are player {seat + 1} of {n}, {role}."
            return f"{who}{_history_compact(clues)}{_notes_compact(own_notes)}{self._vote_tail}"
        if role == "observer":
            who = "You are the observer. Your image is the civilians' image."
        else:
            who = f"You are Player {seat + 1}, a civilian."
        return f"{who}\n{_history_full(clues)}{_notes_full(own_notes)}{self._vote_tail}"
