"""Recipes: one function per run, each returning a `VZeroConfig` over the shared base.

    from recipes import get_recipe, RECIPES
    cfg = get_recipe("qwen25vl_72b_8n8g")

A recipe changes fields; it never copies another recipe's body. Users change more fields
with `key=value` overrides on the command line (see `vzero_nemo.train`). Each recipe states
the job shape it is laid out for in `cfg.launch` (nodes x GPUs per node, GPU type), which
`--dry-run` and the planner (`python -m vzero_nemo.plan`) resolve without a cluster.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from recipes.qwen25vl import qwen25vl_7b_1n8g, qwen25vl_32b_4n8g, qwen25vl_72b_8n8g
from recipes.tiny_cpu import tiny_cpu, tiny_cpu_long
from vzero_nemo.config import VZeroConfig

RECIPES: dict[str, Callable[[], VZeroConfig]] = {
    "tiny_cpu": tiny_cpu,
    "tiny_cpu_long": tiny_cpu_long,
    "qwen25vl_7b_1n8g": qwen25vl_7b_1n8g,
    "qwen25vl_32b_4n8g": qwen25vl_32b_4n8g,
    "qwen25vl_72b_8n8g": qwen25vl_72b_8n8g,
}


def get_recipe(name: str) -> VZeroConfig:
    """Build the named recipe's config (not yet finalized)."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}{hint} Available: {', '.join(RECIPES)}")
    cfg = RECIPES[name]()
    cfg.recipe = name
    return cfg
