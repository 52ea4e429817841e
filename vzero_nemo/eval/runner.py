"""`python -m vzero_nemo.eval run|compare`: play the held-out suite with a checkpoint, or pair
two evaluations of the same games.

    python -m vzero_nemo.eval run --weights runs/tiny_cpu/pretrained --out runs/tiny_cpu/eval/before \\
        data.path=runs/tiny_cpu/data eval.games=512 [rollout.clue_policy=oracle ...]
    python -m vzero_nemo.eval run --weights W --out DIR --oracle-out DIR_ORACLE [key=value ...]
    python -m vzero_nemo.eval compare --before DIR --after DIR [--out FILE]

`run` writes the folder described in `vzero_nemo.eval.suite`; with `--oracle-out` the same
loaded weights then also play `eval.oracle_games` games with scripted oracle clues (the
observer alone, no retention probes) into a second folder, as a separate `run` with
`rollout.clue_policy=oracle eval.retention_items=0` would (every chunk of games is seeded by
`eval.seed`), without building the model twice. `compare` prints every change with its
paired 95 % bootstrap interval and the number of games / pairs behind it.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzero_nemo.config import VZeroConfig

if TYPE_CHECKING:  # the suite imports the model stack: only after logs are configured
    from vzero_nemo.eval.suite import HeldOutGame

USAGE = "usage: python -m vzero_nemo.eval {run,compare} ... (--help for each)"


def _save_images(samples: list[dict], games: list[HeldOutGame], out: Path) -> None:
    """The sample games' pair images + change boxes, for the report's game viewer."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        game = games[sample["game_index"]]
        stem = f"game{sample['game_index']:04d}"
        game.pair.original.save(images / f"{stem}_original.png")
        game.pair.modified.save(images / f"{stem}_modified.png")
        sample["images"] = {
            "original": f"images/{stem}_original.png",
            "modified": f"images/{stem}_modified.png",
        }
        sample["changes"] = [c.to_dict() for c in game.pair.truth.changes]


def _retention(stack, cfg: VZeroConfig, games: list[HeldOutGame]) -> dict[str, Any]:
    """Pre-training skills on up to `eval.retention_items` distinct held-out clevr pairs."""
    from vzero_nemo.training.pretrain import score_skills

    seen: dict[str, Any] = {}
    for g in games:
        if g.pair.truth.domain == "clevr" and g.unit not in seen:
            seen[g.unit] = g.pair
    pairs = list(seen.values())[: cfg.eval.retention_items]
    if not pairs:
        return {}
    return score_skills(stack, cfg, pairs, seed=cfg.eval.seed)


def oracle_config(cfg: VZeroConfig) -> VZeroConfig:
    """`cfg` for the oracle-clue suite of `run --oracle-out`: scripted clues, no retention
    probes, `eval.oracle_games` games (None: `eval.games`)."""
    out = copy.deepcopy(cfg)
    out.rollout.clue_policy = "oracle"
    out.eval.retention_items = 0
    out.eval.games = cfg.eval.oracle_games or cfg.eval.games
    return out


def load_stack(cfg: VZeroConfig, weights: str | None):
    """The policy stack of `cfg` with `weights` loaded (None: the config's own init)."""
    from vzero_nemo.training import checkpoint as ckpt
    from vzero_nemo.training import engine
    from vzero_nemo.training.setup import build_stack

    stack = build_stack(cfg, with_reference=False)
    if weights:
        with engine.compat_scope():
            ckpt.load_weights(weights, stack.policy)
    return stack


def run_evaluation(
    cfg: VZeroConfig, weights: str | None, out: Path, stack: Any = None
) -> dict[str, Any]:
    """Play the suite with `weights` (None: the config's own init), or with an already
    loaded `stack` of them, and write `out`."""
    from vzero_nemo.eval import suite

    assert cfg.data.path is not None
    start = time.perf_counter()
    games = suite.select_games(cfg.data.val_path or cfg.data.path, cfg.eval.games, cfg.eval.seed)
    if stack is None:
        stack = load_stack(cfg, weights)
    records, samples = suite.play_suite(stack.policy, stack.tokenizer, cfg, games)
    play_s = time.perf_counter() - start
    retention = _retention(stack, cfg, games) if cfg.eval.retention_items else {}
    summary = suite.summarize(records)
    summary.update(
        skills=suite.summarize_skills(retention),
        weights=weights,
        clue_policy=cfg.rollout.clue_policy,
        chance_accuracy=cfg.game.num_spies / cfg.game.num_players,
        seconds={"games": play_s, "total": time.perf_counter() - start},
    )
    out.mkdir(parents=True, exist_ok=True)
    _save_images(samples, games, out)
    (out / "games.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "retention.json").write_text(json.dumps(retention))
    (out / "samples.json").write_text(json.dumps(samples, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _fmt_rate(row: dict[str, float]) -> str:
    return f"{row['value']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def _fmt_change(row: dict[str, float]) -> str:
    if not math.isfinite(row["lo"]):
        return f"{row['delta']:+.3f}"
    return f"{row['delta']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]"


def print_summary(summary: dict[str, Any]) -> None:
    o = summary["overall"]
    print(
        f"[eval] {o['games']} games ({summary['units']} pairs), clues: {summary['clue_policy']}; "
        f"decision accuracy {_fmt_rate(o['decision_accuracy'])} "
        f"(chance {summary['chance_accuracy']:.2f}), N/A {o['na_rate']['value']:.3f}, "
        f"{summary['seconds']['total']:.0f} s"
    )
    for name, row in summary["skills"].items():
        print(f"[eval] skill {name}: {_fmt_rate(row)} over {row['items']} items")


def main_run(argv: list[str]) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval run")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--weights", help="weights or training checkpoint (dist/) directory")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--oracle-out",
        help="also play eval.oracle_games games with scripted oracle clues into this folder",
    )
    args, cfg = config_from_argv(parser, argv)
    if cfg.data.path is None or not Path(cfg.data.path).is_dir():
        fail(f"data.path={cfg.data.path!r} is not a shard directory with a val split")
    if args.weights and not Path(args.weights).is_dir():
        fail(f"--weights {args.weights!r} is not a checkpoint directory")
    if args.oracle_out and Path(args.oracle_out).resolve() == Path(args.out).resolve():
        fail(f"--oracle-out {args.oracle_out!r} is the --out folder; give it its own")
    try:
        stack = load_stack(cfg, args.weights)
        print_summary(run_evaluation(cfg, args.weights, Path(args.out), stack))
        if args.oracle_out:
            ocfg = oracle_config(cfg)
            print_summary(run_evaluation(ocfg, args.weights, Path(args.oracle_out), stack))
    except ValueError as err:
        fail(str(err))
    return 0


def main_compare(argv: list[str]) -> int:
    from vzero_nemo.cli import fail
    from vzero_nemo.eval import suite

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval compare")
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--out", help="write the changes as JSON here")
    args = parser.parse_args(argv)
    try:
        changes = suite.compare(args.before, args.after)
    except ValueError as err:
        fail(str(err))
    if args.out:
        Path(args.out).write_text(json.dumps(changes, indent=1))
    for name, row in changes["overall"].items():
        print(
            f"[compare] {name:24s} {_fmt_change(row)}  ({row['items']} games, {row['units']} pairs)"
        )
    for name, row in changes["skills"].items():
        print(f"[compare] skill {name:18s} {_fmt_change(row)}  ({row['items']} items)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo import logs

    logs.configure()  # before the model stack is imported (flags may refine it)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "compare"):
        print(USAGE, file=sys.stderr)
        return 2
    return main_run(argv[1:]) if argv[0] == "run" else main_compare(argv[1:])
