"""Compare an earlier version of the clue / vote parser with the current one on the model's own
outputs: play games with a checkpoint, parse every completion both ways, count what changes.

    git show 811dd6c:vzero_nemo/game/parsing.py > /tmp/parsing_before.py
    python scripts/compare_parsers.py --recipe tiny_cpu --weights runs/tiny_cpu/pretrained \\
        --before /tmp/parsing_before.py --games 256 --out docs/results/parser_change.json \\
        data.path=runs/tiny_cpu/data [key=value ...]

Games come from the `train` split (no training happens). Both parsers read each completion
with the game's own settings (players, N/A allowed, the format each prompt asked for).
Reported: completions compared, how many change vote / clue text / format flag, and examples.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import torch

from vzero_nemo.game import parsing
from vzero_nemo.game.env import GameBatch
from vzero_nemo.game.prompts import PromptBuilder
from vzero_nemo.training.rollout import play_games

MAX_EXAMPLES = 20


def load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("parsing_before", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--before {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(env: GameBatch, completions: dict[str, str], before: ModuleType) -> dict:
    """Counts and examples of changed readings over every completion of `env`."""
    cfg, counts, examples = env.cfg, Counter(), []
    clue_format = PromptBuilder(cfg).clue_format
    for rid, text in completions.items():
        if "/vote/" in rid:
            old = before.parse_vote(text, cfg.num_players, cfg.allow_na, cfg.answer_format)
            new = parsing.parse_vote(text, cfg.num_players, cfg.allow_na, cfg.answer_format)
            kind = "vote"
        else:
            old = before.parse_clue(text, clue_format)
            new = parsing.parse_clue(text, clue_format)
            kind = "clue"
        counts[f"{kind}s"] += 1
        changed_value = old[0] != new[0]
        changed_flag = old[1].format_ok != new[1].format_ok
        counts[f"{kind}_value_changed"] += changed_value
        counts[f"{kind}_format_ok_changed"] += changed_flag
        counts[f"{kind}_invalid_before"] += old[0] is None
        if (changed_value or changed_flag) and len(examples) < MAX_EXAMPLES:
            examples.append(
                {"kind": kind, "text": text, "before": [old[0], old[1].format_ok]}
                | {"after": [new[0], new[1].format_ok]}
            )
    return {"counts": dict(counts), "examples": examples}


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
    from vzero_nemo.training import checkpoint as ckpt
    from vzero_nemo.training import engine
    from vzero_nemo.training.data_source import GameSource
    from vzero_nemo.training.setup import build_stack

    parser = argparse.ArgumentParser(prog="python scripts/compare_parsers.py")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--weights", required=True, help="weights or checkpoint (dist/) dir")
    parser.add_argument("--before", required=True, help="an earlier vzero_nemo/game/parsing.py")
    parser.add_argument("--games", type=int, default=256)
    parser.add_argument("--out", required=True)
    args, cfg = config_from_argv(parser, argv)
    if cfg.data.path is None:
        fail("data.path is not set; pass data.path=DIR (a shard directory)")
    if not Path(args.before).is_file():
        fail(f"--before {args.before!r} does not exist; write it with `git show REV:PATH > F`")
    before = load_module(args.before)
    stack = build_stack(cfg, with_reference=False)
    with engine.compat_scope():
        ckpt.load_weights(args.weights, stack.policy)
    source = GameSource(cfg.data.path, dp_rank=0, dp_size=1, seed=cfg.train.seed)
    pairs = source.next_pairs(args.games)
    seed = cfg.train.seed
    generator = torch.Generator().manual_seed(seed)
    rollout = play_games(stack.policy, pairs, cfg, stack.tokenizer, seed=seed, generator=generator)
    result = compare(rollout.env, rollout.completions, before)
    result |= {"weights": args.weights, "before": args.before, "games": args.games}
    result["temperature"] = cfg.rollout.temperature
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
