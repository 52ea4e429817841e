"""`VZeroConfig`, the root of the config tree, and `finalize`: every section's own
`validate()`, then the checks that span sections and the values derived from them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vzero_nemo.config.checks import require
from vzero_nemo.config.method import GameConfig, GRPOConfig, RolloutConfig, SPOConfig
from vzero_nemo.config.model import LaunchConfig, ModelConfig, ParallelConfig
from vzero_nemo.config.overrides import apply_overrides, flatten, set_value
from vzero_nemo.config.training import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggingConfig,
    PretrainConfig,
    TrainConfig,
)


@dataclass(kw_only=True, slots=True)
class VZeroConfig:
    recipe: str = "base"
    """Name of the recipe that built this config (recorded in checkpoints)."""
    preset: Literal["paper", "official_code"] = "paper"
    """Which reading of the method: `paper` (default) or `official_code`."""
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    game: GameConfig = field(default_factory=GameConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    spo: SPOConfig = field(default_factory=SPOConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    world_size: int | None = None
    """Derived by `finalize` (number of processes)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format(self) -> str:
        """Human-readable `key = value` listing of every field (the resolved config)."""
        return "\n".join(f"{k} = {v!r}" for k, v in flatten(self).items())

    def apply_overrides(self, overrides: list[str]) -> VZeroConfig:
        apply_overrides(self, overrides)
        return self

    def finalize(self, world_size: int = 1) -> VZeroConfig:
        finalize(self, world_size)
        return self

    def sections(self) -> list[Any]:
        """The section dataclasses (model, parallel, ..., logging), in field order."""
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return [value for value in values if dataclasses.is_dataclass(value)]


def finalize(cfg: VZeroConfig, world_size: int = 1) -> None:
    """Validate the tree and derive values. Raises ValueError naming the bad value."""
    # Re-check every field's type: recipes assign attributes directly.
    for key, value in flatten(cfg).items():
        set_value(cfg, key, value)
    require(world_size >= 1, f"world_size={world_size} must be >= 1")
    for section in cfg.sections():
        section.validate()
    dp = _data_parallel_size(cfg.parallel, world_size)
    cfg.parallel.data_parallel_size = dp
    cfg.world_size = world_size
    games = cfg.data.games_per_iteration
    require(
        games % dp == 0,
        f"data.games_per_iteration={games} is not divisible by the data-parallel size {dp}; "
        f"use a multiple of {dp}",
    )
    require(
        not cfg.train.share_prompts or cfg.grpo.loss_aggregation == "global_token",
        "train.share_prompts=true packs several samples into one row, which "
        f"grpo.loss_aggregation={cfg.grpo.loss_aggregation!r} cannot tell apart; use "
        "grpo.loss_aggregation=global_token or train.share_prompts=false",
    )
    if cfg.data.seed is None:
        cfg.data.seed = cfg.train.seed
    if cfg.checkpoint.dir is None:
        cfg.checkpoint.dir = f"{cfg.logging.dir}/checkpoints"
    if cfg.logging.run_name is None:
        cfg.logging.run_name = cfg.recipe


def _data_parallel_size(par: ParallelConfig, world_size: int) -> int:
    """world_size / (TP * PP), checked against the world size and a preset DP size."""
    tp, pp = par.tensor_model_parallel_size, par.pipeline_model_parallel_size
    require(
        world_size % (tp * pp) == 0,
        f"world size {world_size} is not divisible by TP*PP = {tp}*{pp} = {tp * pp}; "
        "change parallel.tensor_model_parallel_size / pipeline_model_parallel_size or the "
        "number of processes (a dry-run or plan without WORLD_SIZE: launch.nodes x "
        "launch.gpus_per_node)",
    )
    dp = world_size // (tp * pp)
    require(
        par.data_parallel_size in (None, dp),
        f"parallel.data_parallel_size={par.data_parallel_size} but world size {world_size} / "
        f"(TP {tp} * PP {pp}) = {dp}; leave it unset to derive it",
    )
    return dp
