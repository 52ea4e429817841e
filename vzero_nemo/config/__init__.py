"""Typed configuration tree for a Vision-Zero run, with NeMo-style `key=value` overrides.

A run is described by one `VZeroConfig`: a tree of kw-only dataclasses (model, parallel,
game, rollout, grpo, spo, data, train, pretrain, eval, launch, checkpoint, logging). Recipes
(`recipes/`) are small functions that return a config with some fields changed; users then
change more fields from the command line:

    python -m vzero_nemo.train --recipe tiny_cpu train.iterations=20 game.vote_mode=civilians

Overrides are type-checked against the field's annotation; an unknown key is an error that
suggests the closest valid keys. `finalize(world_size)` validates the whole tree and derives
values (e.g. the data-parallel size from world size, TP and PP); it raises `ValueError` naming
the bad value and how to fix it.

Where the paper and the official code disagree, the field's docstring says so; the preset
`paper` (default) and `official_code` select the whole set at once (`preset=official_code`,
applied before the other overrides of the same command line).

Layout: the sections live in `model` (model, parallel, launch), `method` (game, rollout,
grpo, spo) and `training` (data, train, pretrain, eval, checkpoint, logging), each with its
own `validate()`; `tree` holds `VZeroConfig` and `finalize` (the checks that span sections);
`overrides` parses `key=value` words; `presets` lists the fields of each preset. Import
everything from `vzero_nemo.config`.
"""

from vzero_nemo.config.method import GameConfig, GRPOConfig, RolloutConfig, SPOConfig, Stage
from vzero_nemo.config.model import LaunchConfig, ModelConfig, ParallelConfig
from vzero_nemo.config.overrides import (
    apply_overrides,
    apply_preset,
    flatten,
    parse_value,
    set_value,
)
from vzero_nemo.config.presets import PRESET_FIELDS, PRESETS
from vzero_nemo.config.training import (
    PRETRAIN_TASKS,
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggingConfig,
    PretrainConfig,
    TrainConfig,
)
from vzero_nemo.config.tree import VZeroConfig, finalize

__all__ = [
    "PRESETS",
    "PRESET_FIELDS",
    "PRETRAIN_TASKS",
    "CheckpointConfig",
    "DataConfig",
    "EvalConfig",
    "GRPOConfig",
    "GameConfig",
    "LaunchConfig",
    "LoggingConfig",
    "ModelConfig",
    "ParallelConfig",
    "PretrainConfig",
    "RolloutConfig",
    "SPOConfig",
    "Stage",
    "TrainConfig",
    "VZeroConfig",
    "apply_overrides",
    "apply_preset",
    "finalize",
    "flatten",
    "parse_value",
    "set_value",
]
