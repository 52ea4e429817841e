"""Play N full games with a scripted policy on synthetic ground truth (no images, no model).

    python -m vzero_nemo.game.simulate --policy oracle --games 1000 --domain clevr
    python -m vzero_nemo.game.simulate --policy random --games 1000 --vote-mode civilians

Prints decision accuracy, N/A rate, invalid-vote rate and mean reward per role (denominators
as in GameBatch.metrics). Games run in batches of `--batch-size`, each a GameBatch with its own
seed, exactly as the trainer runs them. A sanity check of the rules: the oracle should catch
the spy almost always, a random voter about 1 / num_players of the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from vzero_nemo.config import GameConfig, GRPOConfig
from vzero_nemo.game.env import GameBatch, metrics_from_counts
from vzero_nemo.game.policies import POLICIES, make_policy, play
from vzero_nemo.game.synthetic import random_truths


def simulate(
    policy_name: str,
    num_games: int,
    domain: str,
    game: GameConfig,
    grpo: GRPOConfig | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Metrics of `num_games` games (GameBatch.metrics, pooled exactly over batches)."""
    if num_games < 1 or batch_size < 1:
        raise ValueError(f"num_games={num_games} and batch_size={batch_size} must be >= 1")
    policy = make_policy(policy_name, game, seed)
    counts: dict[str, float] = {}
    for start in range(0, num_games, batch_size):
        n = min(batch_size, num_games - start)
        env = GameBatch(random_truths(domain, n, seed + start), game, seed + start, grpo=grpo)
        play(env, policy)
        for key, value in env.counts().items():
            counts[key] = counts.get(key, 0.0) + value
    return metrics_from_counts(counts)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", choices=sorted(POLICIES), default="oracle")
    parser.add_argument("--games", type=int, default=1000)
    parser.add_argument("--domain", choices=("clevr", "chart", "real", "mixed"), default="clevr")
    parser.add_argument("--vote-mode", choices=("observer", "civilians"), default="observer")
    parser.add_argument("--num-players", type=int, default=4)
    parser.add_argument("--num-votes", type=int, default=8)
    parser.add_argument("--decision-reward", choices=("paper", "official_code"), default="paper")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    game = dataclasses.replace(
        GameConfig(),
        vote_mode=args.vote_mode,
        num_players=args.num_players,
        num_votes=args.num_votes,
    )
    grpo = dataclasses.replace(GRPOConfig(), decision_reward=args.decision_reward)
    metrics = simulate(args.policy, args.games, args.domain, game, grpo, args.seed)
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print(
            f"policy={args.policy} games={int(metrics['count/games'])} domain={args.domain} "
            f"vote_mode={args.vote_mode} players={args.num_players}"
        )
        for key, value in metrics.items():
            if key.startswith("count/"):
                continue
            print(f"  {key:26s} {value:.4f}")
    return metrics


if __name__ == "__main__":
    main()
