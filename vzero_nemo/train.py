"""Launch a Vision-Zero self-play run.

    python -m vzero_nemo.train --recipe tiny_cpu [key=value ...]            # one process
    torchrun --nproc-per-node 2 -m vzero_nemo.train --recipe tiny_cpu       # DP=2 on gloo
    python -m vzero_nemo.train --recipe qwen25vl_72b_8n8g --dry-run         # print and exit
    python -m vzero_nemo.train --recipe qwen25vl_7b_1n8g model.size=auto \
        model.hf_path=/checkpoints/Qwen2.5-VL-3B-Instruct --dry-run        # any Qwen2.5-VL

`--dry-run` resolves the recipe for its own job shape (`launch.nodes` x `launch.gpus_per_node`,
overridable; WORLD_SIZE when a launcher sets it) in one process without a GPU, prints the
layout (TP/PP/DP, batch, each pipeline stage's layers and parameters), the planner's memory
per GPU (`vzero_nemo.plan`) and the resolved config, and exits 2 with the planner's numbers
when the recipe does not fit its GPUs.

Overrides are NeMo-style dotted `key=value` words (`train.lr=5e-6 game.vote_mode=civilians`,
`preset=official_code`), type-checked against the config tree; an unknown key is an error that
names the closest valid keys. Everything that can be checked cheaply (recipe name, override
keys and types, parallel sizes against the world size and the model's heads / layers, the
data path) is checked before any model is built, and a bad value exits with status 2 and a
message naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
from vzero_nemo.config import VZeroConfig
from vzero_nemo.models.sizes import Qwen25VLDims, check_parallel, describe_dims, model_dims


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


def check_model(cfg: VZeroConfig) -> Qwen25VLDims:
    """The model's dimensions (`model.size=auto`: read from model.hf_path/config.json),
    checked against the TP / PP layout."""
    dims = model_dims(cfg.model)
    check_parallel(dims, cfg.parallel, cfg.model)
    return dims


def dry_run(cfg: VZeroConfig, dims: Qwen25VLDims) -> int:
    """Print the layout, the planner's memory per GPU, the layer spec and the config; fail if
    it cannot fit."""
    from vzero_nemo.parallel.cpu_compat import layer_spec_choice
    from vzero_nemo.plan import plan_config
    from vzero_nemo.plan.report import does_not_fit_message, layout_text

    try:
        plan = plan_config(cfg)
    except ValueError as err:
        fail(str(err))
    print(layout_text(cfg, plan.job, plan.memory, plan.device, plan.capacity_bytes))
    print(cfg.format())
    print(f"layer spec = {layer_spec_choice()}")
    print(f"model dims = {describe_dims(dims)}")
    if not plan.fits:
        fail(does_not_fit_message(cfg, plan.memory, plan.capacity_bytes))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.train",
        description="Vision-Zero self-play training (Iterative-SPO) on megatron-core.",
    )
    add_config_arguments(parser, default_recipe=None)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the layout, planned memory and config; exit"
    )
    args, cfg = config_from_argv(parser, argv, lambda a: "launch" if a.dry_run else None)
    try:
        dims = check_model(cfg)
    except ValueError as err:
        fail(str(err))
    if args.dry_run:
        return dry_run(cfg, dims)
    try:
        check_paths(cfg)
    except ValueError as err:
        fail(str(err))

    from vzero_nemo.training.loop import train

    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
