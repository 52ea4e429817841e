"""The two readings of the method as whole sets of fields: `paper` and `official_code`.

`paper` (our defaults) and `official_code` give every point where the two readings differ;
`official_code` also pins what the official game cannot change (one spy, observer votes,
N/A allowed, 2 clue rounds, one optimizer step per batch of games).
docs/official_code.md cites the official line behind each. `preset=official_code` on a
command line applies one of them before the other overrides (`vzero_nemo.config.overrides`).
"""

from __future__ import annotations

from typing import Any

PRESETS = ("paper", "official_code")

PRESET_FIELDS: dict[str, dict[str, Any]] = {
    "paper": {
        "game.answer_format": "think_answer",
        "game.answer_parser": "strict",
        "game.format_flag": "strict",
        "grpo.decision_reward": "paper",
        "grpo.group_std": "sample",
        "grpo.rae_alpha": 0.95,
        "grpo.rae_update": "iteration",
        "grpo.loss_aggregation": "global_token",
        "spo.schedule": "iterative",
        "spo.clue_stage_trains_votes": False,
    },
    "official_code": {
        "game.answer_format": "boxed",
        "game.answer_parser": "official",
        "game.format_flag": "official",
        "game.num_clue_rounds": 2,
        "game.num_spies": 1,
        "game.vote_mode": "observer",
        "game.allow_na": True,
        "grpo.decision_reward": "official_code",
        "grpo.std_normalize": True,
        "grpo.group_std": "population",
        "grpo.rae_alpha": 0.9,
        "grpo.rae_subtract": "updated",
        "grpo.rae_update": "game",
        "grpo.loss_aggregation": "sequence_mean",
        "spo.schedule": "alternate",
        "spo.start_stage": "decision",
        "spo.cycle_length": 1,
        "spo.clue_stage_trains_votes": True,
        "train.steps_per_iteration": 1,
    },
}
