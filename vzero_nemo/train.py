"""Launch a Vision-Zero self-play run.

    python -m vzero_nemo.train --recipe tiny_cpu [key=value ...]            # one process
    torchrun --nproc-per-node 2 -m vzero_nemo.train --recipe tiny_cpu       # DP=2 on gloo
    python -m vzero_nemo.train --recipe qwen25vl_72b_8n8g --dry-run         # print and exit

Overrides are NeMo-style dotted `key=value` words (`train.lr=5e-6 game.vote_mode=civilians`,
`preset=official_code`), type-checked against the config tree; an unknown key is an error that
names the closest valid keys. Everything that can be checked cheaply (recipe name, override
keys and types, parallel sizes against the world size, the data path) is checked before any
model is built, and a bad value exits with status 2 and a message naming it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recipes import RECIPES, get_recipe
from vzero_nemo.config import VZeroConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.train",
        description="Vision-Zero self-play training (Iterative-SPO) on megatron-core.",
    )
    parser.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    return parser.parse_intermixed_args(argv)


def build_config(recipe: str, overrides: list[str], world_size: int) -> VZeroConfig:
    """Recipe -> overrides -> finalize. Raises ValueError on any bad input."""
    cfg = get_recipe(recipe)
    cfg.apply_overrides(overrides)
    cfg.finalize(world_size)
    return cfg


def check_paths(cfg: VZeroConfig) -> None:
    """Input files that must exist before any expensive work starts."""
    if cfg.data.path is None:
        raise ValueError("data.path is not set; point it at a shard directory from data_prep")
    if not Path(cfg.data.path).is_dir():
        raise ValueError(
            f"data.path={cfg.data.path!r} does not exist or is not a directory; generate "
            "shards with `python -m data_prep generate ... --out DIR` and pass data.path=DIR"
        )
    if cfg.model.hf_path is not None and not Path(cfg.model.hf_path).is_dir():
        raise ValueError(f"model.hf_path={cfg.model.hf_path!r} is not a directory")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        cfg = build_config(args.recipe, args.overrides, world_size)
        if args.dry_run:
            print(cfg.format())
            return 0
        check_paths(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from vzero_nemo.training.loop import train

    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
