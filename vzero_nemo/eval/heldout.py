"""Held-out evaluation: play games on unseen pairs with a policy checkpoint, no training.

    python -m vzero_nemo.eval.heldout --recipe tiny_cpu --weights runs/tiny_cpu/pretrained \\
        --out runs/tiny_cpu/eval_before.json eval.games=64 [key=value ...]

Reports, over `eval.games` games of the `val` split (denominators in the names):
- decision accuracy (plurality vote names the spy, per game), vote accuracy and N/A rate
  (per vote), invalid votes;
- clue quality per role (clevr): the fraction of clues that are well-formed and name an
  object of the speaker's own image ("grounded"), and the fraction that contradict the
  civilians' image. Spy clues contradicting the original more often than civilian clues is
  what makes the spy findable; the gap shows the roles have not collapsed.
Chance accuracy is 1 / num_players.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from vzero_nemo.config import VZeroConfig
from vzero_nemo.data.pairs import GamePair
from vzero_nemo.game.policies import contradicts_original
from vzero_nemo.training.rollout import Rollout, play_games


def _grounded(clue: str, scene: dict[str, Any]) -> bool:
    words = clue.lower().split()
    return any(o["color"] in words and o["shape"] in words for o in scene["objects"])


def clue_quality(rollout: Rollout, pairs: list[GamePair]) -> dict[str, float]:
    """Per-role clue statistics over every clue turn (clevr pairs only)."""
    counts = {
        role: {"clues": 0, "parsed": 0, "grounded": 0, "contradicts": 0}
        for role in ("spy", "civilian")
    }
    env = rollout.env
    for g in range(env.num_games):
        truth = pairs[g].truth
        if truth.domain != "clevr":
            continue
        record = env.transcript(g)
        spies = {s - 1 for s in record["spy_players"]}
        for clue in record["clues"]:
            role = "spy" if clue["player"] - 1 in spies else "civilian"
            c = counts[role]
            c["clues"] += 1
            if clue["clue"] is None:
                continue
            c["parsed"] += 1
            own = truth.modified if role == "spy" else truth.original
            c["grounded"] += _grounded(clue["clue"], own)
            c["contradicts"] += contradicts_original(clue["clue"], truth)
    out = {}
    for role, c in counts.items():
        n = max(c["clues"], 1)
        out[f"clue/{role}_parsed_rate"] = c["parsed"] / n
        out[f"clue/{role}_grounded_rate"] = c["grounded"] / n
        out[f"clue/{role}_contradicts_original_rate"] = c["contradicts"] / n
    return out


def evaluate(model, tokenizer, cfg: VZeroConfig, pairs: list[GamePair], seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    rollout = play_games(model, pairs, cfg, tokenizer, seed=seed, generator=generator)
    metrics = {k: v for k, v in rollout.env.metrics().items() if not k.startswith("count/")}
    metrics.update(clue_quality(rollout, pairs))
    metrics["chance_accuracy"] = cfg.game.num_spies / cfg.game.num_players
    metrics["games"] = float(len(pairs))
    return {
        "metrics": metrics,
        "transcripts": [rollout.env.transcript(g) for g in range(min(4, len(pairs)))],
    }


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
    from vzero_nemo.training import checkpoint as ckpt
    from vzero_nemo.training import engine
    from vzero_nemo.training.data_source import GameSource
    from vzero_nemo.training.setup import build_stack

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.heldout")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--weights", help="weights or training checkpoint (dist/) directory")
    parser.add_argument("--out", required=True)
    args, cfg = config_from_argv(parser, argv)
    if cfg.data.path is None:
        fail("data.path is not set; pass data.path=DIR (a shard directory with a val split)")
    stack = build_stack(cfg, with_reference=False)
    if args.weights:
        with engine.compat_scope():
            ckpt.load_weights(args.weights, stack.policy)
    seed, games = cfg.eval.seed, cfg.eval.games
    source = GameSource(
        cfg.data.val_path or cfg.data.path,
        dp_rank=0,
        dp_size=1,
        seed=seed,
        split="val",
        num_epochs=None,
        shuffle=False,
    )
    pairs = source.next_pairs(games)
    result = evaluate(stack.policy, stack.tokenizer, cfg, pairs, seed)
    result["weights"] = args.weights
    if stack.par.is_main:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        m = result["metrics"]
        print(
            f"[eval] {games} games: decision accuracy {m['decision_accuracy']:.3f} "
            f"(chance {m['chance_accuracy']:.2f}), N/A {m['na_rate']:.3f}, "
            f"spy/civilian clues contradicting the original "
            f"{m['clue/spy_contradicts_original_rate']:.2f}/"
            f"{m['clue/civilian_contradicts_original_rate']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
