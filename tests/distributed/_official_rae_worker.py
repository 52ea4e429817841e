"""Worker for tests/distributed/test_official_rae_dp.py: per-game RAE over 2 DP ranks.

Each rank plays its own games with messy observer votes (seeded by rank) under
`preset=official_code` and runs the trainer's `assign_advantages` for a few iterations; the
k-th game of every rank forms one RAE step from the mean over ranks, as one official
micro-step does with one game per GPU. Writes what the test compares with the oracle.

    python tests/distributed/_official_rae_worker.py --out /tmp/rae   # under _launch.py
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tests.oracles.harness import make_trainer, play
from vzero_nemo.config import ParallelConfig
from vzero_nemo.parallel import destroy_parallel, initialize_parallel
from vzero_nemo.training.trainer import assign_advantages

ITERATIONS, GAMES_PER_RANK = 4, 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    par = initialize_parallel(ParallelConfig(backend="gloo"), seed=0)
    tr = make_trainer(par, GAMES_PER_RANK * par.dp_size, "preset=official_code")
    rng = random.Random(100 + par.dp_rank)
    record = []
    for it in range(ITERATIONS):
        env, rollout, completions = play(tr.cfg, GAMES_PER_RANK, 1000 * par.dp_rank + it, rng)
        assign_advantages(tr, rollout, "clue")
        n, rounds = tr.cfg.game.num_players, tr.cfg.game.num_clue_rounds
        games = []
        for g in range(env.num_games):
            votes = [completions[f"g{g}/vote/o{k}"] for k in range(tr.cfg.game.num_votes)]
            clue_adv = [
                rollout.sequences[f"g{g}/r{r}/s{s}"].advantage
                for r in range(rounds)
                for s in range(n)
            ]
            games.append({"spy": env.spy_seats[g][0] + 1, "votes": votes, "clue_adv": clue_adv})
        baselines = [tr.state.baselines.spy, tr.state.baselines.civilian]
        record.append({"games": games, "baselines": baselines, "n": n, "rounds": rounds})
    Path(args.out, f"rank{par.dp_rank}.json").write_text(json.dumps(record))
    destroy_parallel()


if __name__ == "__main__":
    main()
