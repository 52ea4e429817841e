"""Seats, roles and turn order of one "Who Is the Spy?" game.

Seats are 0-based in code (`seat` 0..num_players-1) and 1-based in every text a model reads or
writes ("Player 1" .. "Player N"). The observer, who votes in `vote_mode=observer`, has seat
-1. Spy seats are drawn per game from `random.Random(seed)`, so a batch's seats depend only on
(seed, number of games, num_players, num_spies).

Turn order: `num_clue_rounds` rounds; in each round every seat speaks once, in seat order.
One clue turn is one seat speaking in all games of a batch at once. Then one decision turn.
"""

from __future__ import annotations

import random
from typing import Literal, NamedTuple

from vzero_nemo.config import GameConfig

Role = Literal["spy", "civilian", "observer"]
StageName = Literal["clue", "decision"]
ImageName = Literal["original", "modified", "blank"]
OBSERVER_SEAT = -1


def validate_game_config(cfg: GameConfig) -> None:
    """Raise ValueError naming the bad GameConfig field (same rules as config.finalize)."""
    if cfg.num_players < 3:
        raise ValueError(f"game.num_players={cfg.num_players} must be >= 3")
    if cfg.num_spies < 1:
        raise ValueError(f"game.num_spies={cfg.num_spies} must be >= 1")
    num_civilians = cfg.num_players - cfg.num_spies
    if num_civilians < 2 or cfg.num_spies >= num_civilians:
        raise ValueError(
            f"game.num_spies={cfg.num_spies} with game.num_players={cfg.num_players}: spies "
            "must be fewer than civilians, and at least 2 civilians are needed"
        )
    if cfg.num_clue_rounds < 1:
        raise ValueError(f"game.num_clue_rounds={cfg.num_clue_rounds} must be >= 1")
    if cfg.vote_mode not in ("observer", "civilians"):
        raise ValueError(f"game.vote_mode={cfg.vote_mode!r}; use observer or civilians")
    if cfg.vote_mode == "observer" and cfg.num_votes < 1:
        raise ValueError(f"game.num_votes={cfg.num_votes} must be >= 1")
    if cfg.spy_image not in ("modified", "blank"):
        raise ValueError(f"game.spy_image={cfg.spy_image!r}; use modified or blank")
    if cfg.answer_format not in ("think_answer", "boxed"):
        raise ValueError(f"game.answer_format={cfg.answer_format!r}; use think_answer or boxed")
    if cfg.answer_parser not in ("strict", "official"):
        raise ValueError(f"game.answer_parser={cfg.answer_parser!r}; use strict or official")
    if cfg.format_flag not in ("strict", "official"):
        raise ValueError(f"game.format_flag={cfg.format_flag!r}; use strict or official")
    if cfg.prompt_style not in ("full", "compact"):
        raise ValueError(f"game.prompt_style={cfg.prompt_style!r}; use full or compact")


def draw_spy_seats(
    num_games: int, num_players: int, num_spies: int, seed: int
) -> list[tuple[int, ...]]:
    """Sorted spy seats of each game, drawn uniformly without replacement from one RNG."""
    rng = random.Random(seed)
    return [tuple(sorted(rng.sample(range(num_players), num_spies))) for _ in range(num_games)]


def role_of(seat: int, spy_seats: tuple[int, ...]) -> Role:
    if seat == OBSERVER_SEAT:
        return "observer"
    return "spy" if seat in spy_seats else "civilian"


def image_for(role: Role, spy_image: str) -> ImageName:
    """Which image a role sees: civilians and the observer the original, the spy
    `game.spy_image` (modified or blank)."""
    if role == "spy":
        return "blank" if spy_image == "blank" else "modified"
    return "original"


def clue_turns(num_players: int, num_clue_rounds: int) -> list[tuple[int, int]]:
    """(round, seat) of every clue turn, in play order."""
    return [(r, s) for r in range(num_clue_rounds) for s in range(num_players)]


def voter_seats(cfg: GameConfig, spy_seats: tuple[int, ...]) -> list[int]:
    """Seats casting the votes of one game: num_votes observer samples (seat -1 each) or the
    civilians in seat order."""
    if cfg.vote_mode == "observer":
        return [OBSERVER_SEAT] * cfg.num_votes
    return [s for s in range(cfg.num_players) if s not in spy_seats]


CLUE_PLACEHOLDER = "(no clue)"
"""What other seats see in place of an unparseable clue."""


class Clue(NamedTuple):
    """One spoken clue as every later seat sees it: answer text only, never the reasoning.
    text is CLUE_PLACEHOLDER when the completion had no parseable clue (parse_ok False)."""

    round: int
    seat: int
    text: str
    parse_ok: bool
