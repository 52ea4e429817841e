"""How rarely can a spy contradict the civilians' image when it sees only its own image and
the clues before it? Scripted spies on held-out CLEVR pairs, no model.

    python -m vzero_nemo.experiments.spy_floor --recipe tiny_cpu data.path=DIR \\
        eval.games=256 [game.num_clue_rounds=2] [--samples 64] [--json out.json]

Each held-out pair is played `--samples` times with the game's players, clue rounds and a
uniformly drawn spy seat. Civilians name a random object of the original image ("red cube",
what the pre-trained describe skill does). The spy plays one of these strategies:
- `describe`: a random object of its own (edited) image, the pre-trained skill;
- `repeat_other`: another player's earlier clue that is true of its own image when there is
  one (a civilian's, so it is true of both images and never contradicts), else `describe`;
- `repeat_any`: an earlier clue true of its own image, its own earlier clues included (what
  agree pre-training teaches both roles), else `describe`.
Printed per strategy (and per round with several rounds): the rate of spy clues that
contradict the original image, with a 95 % interval over games, the share of spy turns
that had another player's clue to repeat, and the share of spy clues that repeat another
player's (for `describe`, the rate at which naming an object of its image says a civilian's
clue again by chance). `repeat_other` is the floor a spy reaches without knowing which
objects were edited and without naming objects it did not see: the clue-stage bar ("10
points fewer contradictions") asks the learned spy for that much of the gap between
`describe` and this floor.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from vzero_nemo.data.pairs import GamePair
from vzero_nemo.game.policies import clevr_contradicts, short_phrase

STRATEGIES = ("describe", "repeat_other", "repeat_any")


def repeatable(earlier: list[tuple[bool, str]], own_scene: dict, own_too: bool) -> list[str]:
    """The distinct earlier clues true of `own_scene` (sorted): other players' only, or also
    the speaker's own with `own_too`. `earlier` holds (said by the speaker, clue)."""
    return sorted(
        {
            clue
            for by_self, clue in earlier
            if (own_too or not by_self) and not clevr_contradicts(clue, own_scene)
        }
    )


def spy_clue(
    strategy: str, own_scene: dict, earlier: list[tuple[bool, str]], rng: random.Random
) -> str:
    """The spy's clue; `earlier` holds (said by the spy itself, clue) in speaking order."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown spy strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy != "describe":
        candidates = repeatable(earlier, own_scene, own_too=strategy == "repeat_any")
        if candidates:
            return rng.choice(candidates)
    return short_phrase(rng.choice(own_scene["objects"]))


def play_pair(
    pair: GamePair,
    strategy: str,
    num_players: int,
    num_rounds: int,
    rng: random.Random,
    spy_rng: random.Random,
) -> list[tuple[int, bool, bool, bool]]:
    """One game: per spy turn, (round, contradicts the original, had another's true clue to
    repeat, repeats another's clue). `rng` draws the spy's seat and the civilians' clues,
    `spy_rng` the spy's own choices, so every strategy meets the same seats and civilian
    clues."""
    truth = pair.truth
    if truth.domain != "clevr":
        raise ValueError(f"spy_floor needs clevr pairs, got domain {truth.domain!r}")
    spy = rng.randrange(num_players)
    earlier: list[tuple[bool, str]] = []
    turns = []
    for rnd in range(num_rounds):
        for seat in range(num_players):
            if seat == spy:
                had_other = bool(repeatable(earlier, truth.modified, own_too=False))
                clue = spy_clue(strategy, truth.modified, earlier, spy_rng)
                repeats = any(not by_self and c == clue for by_self, c in earlier)
                contradicts = clevr_contradicts(clue, truth.original)
                turns.append((rnd + 1, contradicts, had_other, repeats))
            else:
                clue = short_phrase(rng.choice(truth.original["objects"]))
            earlier.append((seat == spy, clue))
    return turns


def _rate(hits: list[float]) -> tuple[float, float]:
    """Mean and half-width of a normal 95 % interval over games (per-game means)."""
    n = len(hits)
    mean = sum(hits) / n
    var = sum((h - mean) ** 2 for h in hits) / max(n - 1, 1)
    return mean, 1.96 * math.sqrt(var / n)


def measure(
    pairs: list[GamePair], num_players: int, num_rounds: int, samples: int, seed: int
) -> dict[str, float]:
    """Per strategy (and round): contradiction rate and its interval over the pairs, and the
    share of spy turns with another player's true clue to repeat."""
    if samples < 1 or not pairs:
        raise ValueError(f"need pairs ({len(pairs)}) and samples={samples} >= 1")
    out: dict[str, float] = {"pairs": float(len(pairs)), "samples": float(samples)}
    for strategy in STRATEGIES:
        rng, spy_rng = random.Random(seed), random.Random(seed + 1)
        per_round: dict[int, list[float]] = {r: [] for r in range(1, num_rounds + 1)}
        per_game, had_other, repeats = [], [], []
        for pair in pairs:
            turns = []
            for _ in range(samples):
                turns += play_pair(pair, strategy, num_players, num_rounds, rng, spy_rng)
            per_game.append(sum(t[1] for t in turns) / len(turns))
            had_other.append(sum(t[2] for t in turns) / len(turns))
            repeats.append(sum(t[3] for t in turns) / len(turns))
            for r in per_round:
                in_round = [t[1] for t in turns if t[0] == r]
                per_round[r].append(sum(in_round) / len(in_round))
        out[f"{strategy}/contradicts_rate"], out[f"{strategy}/interval"] = _rate(per_game)
        out[f"{strategy}/had_other_rate"] = sum(had_other) / len(had_other)
        out[f"{strategy}/repeat_other_rate"] = sum(repeats) / len(repeats)
        if num_rounds > 1:
            for r, hits in per_round.items():
                out[f"{strategy}/round{r}/contradicts_rate"] = _rate(hits)[0]
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
    from vzero_nemo.training.data_source import GameSource

    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.experiments.spy_floor", description=__doc__.splitlines()[0]
    )
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--samples", type=int, default=64, help="games per held-out pair")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args, cfg = config_from_argv(parser, argv)
    if cfg.data.path is None:
        fail("data.path is not set; pass data.path=DIR (a shard directory with a val split)")
    if args.samples < 1:
        fail(f"--samples {args.samples} must be >= 1")
    pairs = GameSource(
        cfg.data.val_path or cfg.data.path, dp_rank=0, dp_size=1, seed=cfg.eval.seed,
        split="val", num_epochs=None, shuffle=False,
    ).next_pairs(cfg.eval.games)  # fmt: skip
    game = cfg.game
    result = measure(pairs, game.num_players, game.num_clue_rounds, args.samples, cfg.eval.seed)
    print(
        f"[spy_floor] {len(pairs)} held-out pairs x {args.samples} games, "
        f"{game.num_players} players, {game.num_clue_rounds} clue round(s)"
    )
    for strategy in STRATEGIES:
        rounds = ""
        if game.num_clue_rounds > 1:
            rounds = " (" + ", ".join(
                f"round {r} {result[f'{strategy}/round{r}/contradicts_rate']:.3f}"
                for r in range(1, game.num_clue_rounds + 1)
            ) + ")"  # fmt: skip
        print(
            f"[spy_floor] {strategy:12s} spy contradicting "
            f"{result[f'{strategy}/contradicts_rate']:.3f} "
            f"± {result[f'{strategy}/interval']:.3f}{rounds}; another's true clue to repeat "
            f"on {result[f'{strategy}/had_other_rate']:.0%} of spy turns, repeated on "
            f"{result[f'{strategy}/repeat_other_rate']:.0%}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
