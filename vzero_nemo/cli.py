"""The one way every command builds its config: recipe -> `key=value` overrides -> finalize.

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.heldout")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--out", required=True)            # flags only for non-config things
    args, cfg = config_from_argv(parser, argv)              # exits 2 on a bad override

Training, pre-training, evaluation, benchmarks, the main job and the experiment drivers all
call `config_from_argv` (or `build_config`), so an override that works for one command works
for every other, and a bad one is reported the same way everywhere: `error: <message>` on
stderr and exit status 2, before any model is built. `--verbose` / `--log-file` route
library warnings and logs (`vzero_nemo.logs`) the same way for every command. This module
and the commands' `main()` functions are the only places in the package that import
`recipes`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Literal

from vzero_nemo.config import VZeroConfig

USAGE_ERROR = 2

WorldSize = int | Literal["env", "launch"] | None
"""How `build_config` sizes the job: a number; `env` (None): WORLD_SIZE, else 1 process;
`launch`: WORLD_SIZE when set, else the recipe's own `launch.nodes x launch.gpus_per_node`
(after overrides), so a dry-run or a plan resolves a 64-GPU recipe on one CPU process."""


def world_size_from_env() -> int:
    """Processes in the job (torchrun/Slurm set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_world_size(cfg: VZeroConfig, world_size: WorldSize) -> int:
    if isinstance(world_size, int):
        return world_size
    if world_size == "launch" and "WORLD_SIZE" not in os.environ:
        return cfg.launch.world_size
    return world_size_from_env()


def build_config(
    recipe: str, overrides: list[str] | tuple[str, ...] = (), world_size: WorldSize = None
) -> VZeroConfig:
    """Recipe -> overrides -> finalize. Raises ValueError naming any bad input."""
    from recipes import get_recipe

    cfg = get_recipe(recipe)
    cfg.apply_overrides(list(overrides))
    cfg.finalize(resolve_world_size(cfg, world_size))
    return cfg


def add_config_arguments(parser: argparse.ArgumentParser, default_recipe: str | None) -> None:
    """`--recipe NAME` and the positional `key=value` overrides."""
    from recipes import RECIPES

    parser.add_argument(
        "--recipe",
        required=default_recipe is None,
        default=default_recipe,
        help=f"one of: {', '.join(RECIPES)}"
        + (f" (default {default_recipe})" if default_recipe else ""),
    )
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument(
        "--verbose", action="store_true", help="also show library warnings and INFO logs"
    )
    parser.add_argument(
        "--log-file", default=None, help="append every log record (libraries' too) to this file"
    )


def fail(message: str) -> None:
    """Report a user error the way every command does, and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def configure_logs(args: argparse.Namespace) -> None:
    """Route warnings and logs as `--verbose` / `--log-file` say (`vzero_nemo.logs`); for a
    command that parses its arguments itself (subcommands) before `build_config`."""
    from vzero_nemo import logs

    logs.configure(verbose=args.verbose or None, log_file=args.log_file)


def config_from_argv(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    world_size: WorldSize | Callable[[argparse.Namespace], WorldSize] = None,
) -> tuple[argparse.Namespace, VZeroConfig]:
    """Parse `argv` (flags may come after overrides) and build the config; a bad recipe or
    override prints `error: ...` and exits 2. `world_size` may depend on the parsed flags
    (e.g. `--dry-run` sizes the job from the recipe's launch shape)."""
    args = parser.parse_intermixed_args(argv)
    if callable(world_size):
        world_size = world_size(args)
    configure_logs(args)
    try:
        cfg = build_config(args.recipe, args.overrides, world_size)
    except ValueError as err:
        fail(str(err))
    return args, cfg
