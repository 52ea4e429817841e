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
import sys
from pathlib import Path

from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
from vzero_nemo.config import VZeroConfig


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
    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.train",
        description="Vision-Zero self-play training (Iterative-SPO) on megatron-core.",
    )
    add_config_arguments(parser, default_recipe=None)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args, cfg = config_from_argv(parser, argv)
    if args.dry_run:
        from vzero_nemo.parallel.cpu_compat import layer_spec_choice

        print(cfg.format())
        print(f"layer spec = {layer_spec_choice()}")
        return 0
    try:
        check_paths(cfg)
    except ValueError as err:
        fail(str(err))

    from vzero_nemo.training.loop import train

    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
