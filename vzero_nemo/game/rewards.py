"""Verifiable rewards of the game (Vision-Zero, arXiv 2509.25541), pure Python.

Clue stage, paper Eq. 1 (zero-sum). With v_s the valid votes a spy received, v_cj those
civilian j received, v̄_c their mean over the n_c civilians (N/A and invalid votes are not
votes for anyone):

    spy:          r_s  = -beta * (v_s - v̄_c)
    civilian j:   r_cj = (beta / n_c) * sum_spies (v_s - v̄_c) - lam * (v_cj - v̄_c)

With one spy this is exactly the paper's formula; with several spies the civilians share the
sum over spies, which keeps the total at zero (the paper has one spy).

Decision stage, paper Eq. 4: +1 for a vote naming a spy, -0.5 for N/A, -1 for a wrong or
invalid vote. Preset `official_code` replaces it with the official code's format shaping
0.3 * (2 * format_ok - 1) + 1.2 * a + 0.99 * [a > 0], a being the Eq. 4 reward.

Game outcome (decision accuracy): the accused is the plurality of the valid seat votes. When
k seats tie for the most votes, the game scores (spies among them) / k, the expected value of
breaking the tie uniformly at random; a game without any valid seat vote scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from vzero_nemo.game.parsing import NA, Vote

DecisionPreset = Literal["paper", "official_code"]
CORRECT, ABSTAIN, WRONG = 1.0, -0.5, -1.0


def _check_seats(spy_seats: Sequence[int], num_players: int) -> None:
    if not spy_seats:
        raise ValueError("spy_seats is empty; a game has at least one spy")
    if len(set(spy_seats)) != len(spy_seats):
        raise ValueError(f"spy_seats={list(spy_seats)} has repeated seats")
    bad = [s for s in spy_seats if not 0 <= s < num_players]
    if bad:
        raise ValueError(f"spy_seats {bad} out of range for {num_players} players (0-based)")
    if len(spy_seats) >= num_players:
        raise ValueError(f"spy_seats={list(spy_seats)} leaves no civilian of {num_players}")


def clue_rewards(
    votes_received: Sequence[int],
    spy_seats: Sequence[int],
    beta: float = 0.1,
    lam: float = 0.1,
) -> list[float]:
    """Per-seat clue-stage rewards (Eq. 1); votes_received[i] = valid votes seat i received.

    Example (4 players, spy = seat 2, votes [1, 0, 5, 2]): v̄_c = 1, spy -0.1 * 4 = -0.4,
    civilians 0.4/3 - 0.1 * (v_cj - 1) = [0.1333, 0.2333, 0.0333]; the sum is 0.
    """
    num_players = len(votes_received)
    _check_seats(spy_seats, num_players)
    if any(v < 0 for v in votes_received):
        raise ValueError(f"votes_received={list(votes_received)} has negative counts")
    spies = set(spy_seats)
    civilians = [s for s in range(num_players) if s not in spies]
    num_civilians = len(civilians)
    mean_civ = sum(votes_received[s] for s in civilians) / num_civilians
    spy_excess = sum(votes_received[s] - mean_civ for s in spy_seats)
    shared = beta / num_civilians * spy_excess
    return [
        -beta * (votes_received[s] - mean_civ)
        if s in spies
        else shared - lam * (votes_received[s] - mean_civ)
        for s in range(num_players)
    ]


def decision_reward(
    vote: Vote,
    spy_seats: Sequence[int],
    preset: DecisionPreset = "paper",
    *,
    format_ok: bool | None = None,
) -> float:
    """Reward of one vote (Eq. 4, or the official code's shaping).

    vote: a 0-based seat, "N/A", or None for an invalid vote. format_ok is used only by the
    `official_code` preset; None there means "the vote was parseable" (vote is not None).
    """
    if vote is None:
        base = WRONG
    elif vote == NA:
        base = ABSTAIN
    elif isinstance(vote, int) and not isinstance(vote, bool):
        base = CORRECT if vote in spy_seats else WRONG
    else:
        raise ValueError(f"vote={vote!r} must be a 0-based seat (int), 'N/A' or None")
    if preset == "paper":
        return base
    if preset == "official_code":
        ok = (vote is not None) if format_ok is None else bool(format_ok)
        return 0.3 * (2 * ok - 1) + 1.2 * base + (0.99 if base > 0 else 0.0)
    raise ValueError(f"preset={preset!r}; use 'paper' or 'official_code'")


def count_votes(votes: Sequence[Vote], num_players: int) -> list[int]:
    """Valid votes received by each seat (N/A and invalid votes count for no one)."""
    counts = [0] * num_players
    for vote in votes:
        if isinstance(vote, int) and not isinstance(vote, bool) and 0 <= vote < num_players:
            counts[vote] += 1
    return counts


def decision_credit(votes_received: Sequence[int], spy_seats: Sequence[int]) -> float:
    """Whether the plurality vote names a spy: 1, 0, or (spies among k tied top seats) / k."""
    top = max(votes_received, default=0)
    if top == 0:
        return 0.0
    tied = [s for s, v in enumerate(votes_received) if v == top]
    return sum(1 for s in tied if s in spy_seats) / len(tied)
