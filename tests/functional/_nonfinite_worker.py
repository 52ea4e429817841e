"""Run by test_faults.py in its own process (it initialises torch.distributed).

Builds the real trainer of the tiny recipe, plays one iteration's games, then trains on those
sequences with a poisoned (NaN) advantage: the step must be skipped and counted, the weights
left untouched, a clean step must apply and reset the count, and
`train.max_consecutive_nonfinite` poisoned steps in a row must abort. Prints one JSON line.

    python tests/functional/_nonfinite_worker.py DATA RUN_DIR
"""

from __future__ import annotations

import json
import math
import sys

import torch

from recipes import get_recipe
from vzero_nemo.training import trainer as T
from vzero_nemo.training.loop import setup_trainer
from vzero_nemo.training.rollout import play_games


def main(data: str, run_dir: str) -> None:
    cfg = get_recipe("tiny_cpu").apply_overrides(
        [
            f"data.path={data}",
            f"logging.dir={run_dir}",
            "data.games_per_iteration=2",
            "game.num_votes=4",
            "rollout.max_clue_tokens=6",
            "rollout.max_vote_tokens=6",
            "train.steps_per_iteration=1",
            "train.warmup_fraction=0",  # the first applied step has the full LR
            "train.max_consecutive_nonfinite=2",
            "logging.wandb_mode=disabled",
            "logging.progress_bar=false",
        ]
    )
    cfg.finalize(1)
    tr = setup_trainer(cfg)
    pairs = tr.source.next_pairs(tr.games_per_rank)
    rollout = play_games(
        tr.policy, pairs, cfg, tr.tokenizer, seed=0, generator=torch.Generator().manual_seed(0)
    )
    sequences = T.assign_advantages(tr, rollout, "decision")
    T.score_reference(tr, sequences)
    # Fixed non-zero advantages: the clean step must move the weights even if every group of
    # this rollout happened to be degenerate (all rewards equal -> zero advantage).
    for i, s in enumerate(sequences):
        s.advantage = 1.0 if i % 2 else -1.0
    params = [p for chunk in tr.policy for p in chunk.parameters()]

    def snapshot() -> list[torch.Tensor]:
        return [p.detach().clone() for p in params]

    def changed(before: list[torch.Tensor]) -> bool:
        return any(not torch.equal(a, p.detach()) for a, p in zip(before, params))

    def step() -> dict:
        before = snapshot()
        m = T.train_step(tr, sequences)
        return {
            "step_applied": m["train/step_applied"],
            "skipped": tr.state.skipped_steps,
            "in_a_row": tr.state.nonfinite_in_a_row,
            "weights_changed": changed(before),
        }

    out: dict = {}
    sequences[0].advantage = math.nan
    out["poisoned"] = step()
    sequences[0].advantage = -1.0
    out["clean"] = step()
    sequences[0].advantage = math.nan
    T.train_step(tr, sequences)
    try:
        T.train_step(tr, sequences)
        out["aborted"] = None
    except FloatingPointError as e:
        out["aborted"] = str(e)
    out["skipped_total"] = tr.state.skipped_steps
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
