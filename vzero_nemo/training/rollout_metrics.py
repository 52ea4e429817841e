"""A rollout's global statistics, reduced exactly over data-parallel ranks: every rank
contributes raw sums and counts, one all-reduce adds them, and rates are divided only then,
so a rate has the same value for any DP size. `trainer.run_iteration` logs both."""

from __future__ import annotations

import torch

from vzero_nemo.parallel.groups import all_reduce_sum
from vzero_nemo.training.rollout import Rollout


def reduce_game_metrics(env_metrics: dict[str, float]) -> dict[str, float]:
    """Global game statistics from every DP rank's raw counts (exact sums, then divide)."""
    keys = sorted(k for k in env_metrics if k.startswith("count/"))
    totals = all_reduce_sum(torch.tensor([env_metrics[k] for k in keys], dtype=torch.float64))
    c = {k.removeprefix("count/"): float(v) for k, v in zip(keys, totals.tolist())}
    votes, turns = max(c["votes"], 1.0), max(c["clue_turns"], 1.0)
    return {
        "game/decision_accuracy": c["decision_credit"] / max(c["games"], 1.0),
        "game/vote_accuracy": c["votes_spy"] / votes,
        "game/na_rate": c["votes_na"] / votes,
        "game/invalid_vote_rate": c["votes_invalid"] / votes,
        "game/clue_parse_failure_rate": c["clue_parse_failures"] / turns,
        "game/clue_format_ok_rate": c["clue_format_ok"] / turns,
        "reward/clue_spy": c["clue_reward_spy"] / max(c["spy_seats"], 1.0),
        "reward/clue_civilian": c["clue_reward_civilian"] / max(c["civilian_seats"], 1.0),
        "reward/decision": c["decision_reward"] / votes,
        "game/votes_received_spy": c["votes_received_spy"] / max(c["spy_seats"], 1.0),
        "game/votes_received_civilian": c["votes_received_civilian"]
        / max(c["civilian_seats"], 1.0),
        "game/games": c["games"],
        "game/votes": c["votes"],
    }


def response_stats(rollout: Rollout) -> dict[str, float]:
    """Mean response length per stage and the Monte-Carlo entropy estimate (mean negative
    log-prob of the sampled tokens under the untempered policy), over all DP ranks."""
    stages = ("clue", "decision")
    local = []
    for stage in stages:
        seqs = [
            rollout.sequences[s.request_id]
            for s in rollout.samples
            if s.stage == stage and s.request_id in rollout.sequences  # not scripted turns
        ]
        tokens = sum(len(s.response_ids) for s in seqs)
        local += [tokens, len(seqs), -sum(sum(s.old_logp) for s in seqs)]
    sums = all_reduce_sum(torch.tensor(local, dtype=torch.float64)).tolist()
    out: dict[str, float] = {}
    for i, stage in enumerate(stages):
        t, n, h = sums[3 * i : 3 * i + 3]
        out[f"response/{stage}_tokens_mean"] = t / max(n, 1.0)
        out[f"response/{stage}_entropy_mc"] = h / max(t, 1.0)
    return out
