"""Batch statistics of finished games, from summable counts (exact over batches and ranks).

`GameBatch.counts()` returns `count/<name>` sums for every name in COUNT_KEYS; sum those over
batches or data-parallel ranks, then `metrics_from_counts` gives the pooled rates.
"""

from __future__ import annotations

from collections.abc import Mapping

COUNT_KEYS = (
    "games votes votes_spy votes_na votes_invalid votes_format_ok clue_turns "
    "clue_parse_failures clue_format_ok spy_seats civilian_seats decision_credit "
    "clue_reward_spy clue_reward_civilian decision_reward votes_received_spy "
    "votes_received_civilian"
).split()


def metrics_from_counts(counts: Mapping[str, float]) -> dict[str, float]:
    """Batch statistics from `count/*` sums (one batch, or summed over batches / ranks).

    Denominators: games = B; votes = all votes cast (B * num_votes, or B * num_civilians);
    clue turns = B * num_players * num_clue_rounds; spy seats = B * num_spies; civilian
    seats = B * num_civilians.

    decision_accuracy: mean over games of the plurality credit (1 if the plurality of valid
        seat votes names a spy; a k-way tie scores spies-among-tied / k, the expectation of a
        random tie-break; no valid seat vote scores 0). vote_accuracy: votes naming a spy /
        votes. na_rate, invalid_vote_rate, vote_format_ok_rate: / votes.
        clue_parse_failures: a count; clue_parse_failure_rate, clue_format_ok_rate: / clue
        turns. reward/clue_spy: mean Eq. 1 reward / spy seats; reward/clue_civilian:
        / civilian seats; reward/decision: / votes. votes_received/spy and /civilian: valid
        votes received / spy seats and / civilian seats.
    The `count/*` inputs are returned too.
    """
    missing = [k for k in COUNT_KEYS if f"count/{k}" not in counts]
    if missing:
        raise ValueError(f"counts lack {missing}; pass GameBatch.counts() (or sums of them)")
    c = {k: counts[f"count/{k}"] for k in COUNT_KEYS}
    if c["games"] <= 0:
        raise ValueError("counts describe no games (count/games = 0)")
    votes, turns = c["votes"], c["clue_turns"]
    m = {
        "decision_accuracy": c["decision_credit"] / c["games"],
        "vote_accuracy": c["votes_spy"] / votes,
        "na_rate": c["votes_na"] / votes,
        "invalid_vote_rate": c["votes_invalid"] / votes,
        "vote_format_ok_rate": c["votes_format_ok"] / votes,
        "clue_parse_failures": c["clue_parse_failures"],
        "clue_parse_failure_rate": c["clue_parse_failures"] / turns,
        "clue_format_ok_rate": c["clue_format_ok"] / turns,
        "reward/clue_spy": c["clue_reward_spy"] / c["spy_seats"],
        "reward/clue_civilian": c["clue_reward_civilian"] / c["civilian_seats"],
        "reward/decision": c["decision_reward"] / votes,
        "votes_received/spy": c["votes_received_spy"] / c["spy_seats"],
        "votes_received/civilian": c["votes_received_civilian"] / c["civilian_seats"],
    }
    m.update({f"count/{k}": float(v) for k, v in c.items()})
    return m
