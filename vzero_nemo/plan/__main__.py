"""Plan a run: memory per GPU, predicted iteration time, and the layouts that fit.

    python -m vzero_nemo.plan --recipe qwen25vl_72b_8n8g [key=value ...]
    python -m vzero_nemo.plan --size 72b --nodes 8 --gpus-per-node 8 --gpu h100-80gb
    python -m vzero_nemo.plan --recipe qwen25vl_7b_1n8g launch.gpu=h200-141gb --top 5

`--size` plans the shipped recipe of that model size (`--nodes`, `--gpus-per-node` and
`--gpu` are shorthands for the `launch.*` overrides). Prints the recipe's own layout (stages,
parameters, memory per phase), the memory alternatives the layout could use (distributed
optimizer or not, recompute none / selective / full, reference resident or offloaded), the
predicted split of an iteration (rollout, reference log-probs, training) and a ranking of
every TP/PP/DP layout for the job's GPU count. Nothing is allocated and no GPU is needed;
a `cpu` device is measured (fp32 matmul peak, copy bandwidth) before it is planned for.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vzero_nemo.cli import add_config_arguments, build_config, configure_logs, fail
from vzero_nemo.config import VZeroConfig
from vzero_nemo.plan import plan_config
from vzero_nemo.plan import report as rp
from vzero_nemo.plan.devices import capacity_bytes, device_spec
from vzero_nemo.plan.layouts import rank_layouts
from vzero_nemo.plan.timing import predict_times


def recipe_for_size(size: str) -> str:
    """The first shipped recipe of `size` (tiny family: tiny_cpu)."""
    from recipes import RECIPES, get_recipe

    for name in RECIPES:
        if get_recipe(name).model.size == size:
            return name
    return "tiny_cpu"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.plan", description=__doc__)
    add_config_arguments(parser, default_recipe="")
    parser.add_argument("--size", help="plan this model.size with its shipped recipe")
    parser.add_argument("--nodes", type=int, help="= launch.nodes")
    parser.add_argument("--gpus-per-node", type=int, help="= launch.gpus_per_node")
    parser.add_argument("--gpu", help="= launch.gpu (h100-80gb, h200-141gb, a100-80gb, cpu)")
    parser.add_argument("--mfu", type=float, default=0.4, help="compute efficiency assumed")
    parser.add_argument("--bandwidth-efficiency", type=float, default=0.7)
    parser.add_argument("--top", type=int, default=8, help="ranked layouts printed")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_intermixed_args(argv)
    configure_logs(args)
    if bool(args.recipe) == bool(args.size):
        fail("give exactly one of --recipe NAME or --size SIZE")
    if args.size:
        args.overrides = [f"model.size={args.size}", *args.overrides]
        args.recipe = recipe_for_size(args.size)
    for flag, key in (("nodes", "nodes"), ("gpus_per_node", "gpus_per_node"), ("gpu", "gpu")):
        if getattr(args, flag) is not None:
            args.overrides = [f"launch.{key}={getattr(args, flag)}", *args.overrides]
    return args


def resolve(args: argparse.Namespace) -> tuple[VZeroConfig, str | None]:
    """The config at the launch shape, or (when the recipe's own TP x PP does not divide
    it) at DP=1 with the reason, so the ranking still runs for the requested GPUs."""
    try:
        return build_config(args.recipe, args.overrides, "launch"), None
    except ValueError as err:
        if "not divisible" not in str(err):
            fail(str(err))
        from recipes import get_recipe

        probe = get_recipe(args.recipe).apply_overrides(args.overrides)
        model_parallel = (
            probe.parallel.tensor_model_parallel_size * probe.parallel.pipeline_model_parallel_size
        )
        try:
            cfg = build_config(args.recipe, args.overrides, model_parallel)
        except ValueError:
            fail(str(err))
        return cfg, f"{probe.launch.world_size} GPUs: {err}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg, not_own = resolve(args)
    try:
        plan = plan_config(cfg, timing=True)
        device = device_spec(cfg.launch.gpu)
        times = predict_times(
            plan.job, device, mfu=args.mfu, bandwidth_efficiency=args.bandwidth_efficiency
        )
    except ValueError as err:
        fail(str(err))
    gpus = cfg.launch.world_size
    print(f"plan for recipe {cfg.recipe}, model.size={cfg.model.size}, {gpus} x {device.name}")
    if not_own:
        print(f"the recipe's own layout cannot run on {not_own}")
    else:
        print(rp.layout_text(cfg, plan.job, plan.memory, device, plan.capacity_bytes))
        print("\n".join(rp.variant_lines(plan.job)))
        print("\n".join(rp.time_lines(times, device, args.mfu, args.bandwidth_efficiency, gpus)))
    ranked = rank_layouts(
        plan.job,
        device,
        gpus=gpus,
        gpus_per_node=cfg.launch.gpus_per_node,
        capacity_bytes=capacity_bytes(device, cfg.launch.gpus_per_node),
        mfu=args.mfu,
        bandwidth_efficiency=args.bandwidth_efficiency,
    )
    fitting = sum(r.fits for r in ranked)
    print(f"layouts of {gpus} GPUs ({fitting} of {len(ranked)} fit), best first:")
    print("\n".join(rp.ranking_lines(ranked, args.top)))
    if args.json:
        args.json.write_text(json.dumps(rp.plan_json(cfg, plan, times, ranked), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
