"""Run by test_stages.py in its own process (it initialises torch.distributed).

Plays one iteration's games with the real tiny trainer, then, for each stage, takes one
training step three times from the same weights, the stage's own rewards replaced by random
ones (an untrained model earns no reward): as such, with the OTHER stage's rewards also
replaced, and with other own rewards. Prints whether the gradient changed, and how the step
moved the log-probs of the stage's sequences: their correlation with the sequences'
advantages, which is positive when the update favours what was rewarded (one JSON line).

    python tests/functional/_stage_grad_worker.py DATA RUN_DIR
"""

from __future__ import annotations

import json
import random
import sys

import torch

from vzero_nemo.cli import build_config
from vzero_nemo.experiments.update_direction import correlation, logp_shift
from vzero_nemo.training import trainer as T
from vzero_nemo.training.loop import setup_trainer
from vzero_nemo.training.rollout import play_games


def main(data: str, run_dir: str) -> None:
    cfg = build_config("tiny_cpu", [
        f"data.path={data}", f"logging.dir={run_dir}", "data.games_per_iteration=4",
        "game.num_votes=4", "rollout.max_clue_tokens=6", "rollout.max_vote_tokens=6",
        "train.steps_per_iteration=1", "logging.wandb_mode=disabled",
        "logging.progress_bar=false",
    ], world_size=1)  # fmt: skip
    tr = setup_trainer(cfg)
    pairs = tr.source.next_pairs(tr.games_per_rank)
    rollout = play_games(
        tr.policy, pairs, cfg, tr.tokenizer, seed=0, generator=torch.Generator().manual_seed(0)
    )
    samples = list(rollout.samples)
    params = [p for chunk in tr.policy for p in chunk.parameters()]
    weights = [p.detach().clone() for p in params]
    baselines = tr.state.baselines.state_dict()

    def noisy(seed: int) -> dict[str, float]:
        rng = random.Random(seed)  # rewards an untrained model never earns: non-zero gradient
        return {s.request_id: rng.uniform(-3, 3) for s in samples}

    def step(stage: str, rewards: dict[str, dict[str, float]]) -> list:
        """One step of `stage` from the saved weights with `rewards[stage_of_sample]` (else
        the rollout's); the sequences it trained on."""
        for p, w in zip(params, weights):
            p.data.copy_(w)
        tr.state.baselines.load_state_dict(baselines)
        rollout.samples = [
            s._replace(reward=rewards[s.stage][s.request_id]) if s.stage in rewards else s
            for s in samples
        ]
        sequences = T.assign_advantages(tr, rollout, stage)
        T.score_reference(tr, sequences)
        T.train_step(tr, sequences)
        return sequences

    def gradient(stage: str, rewards: dict[str, dict[str, float]]) -> torch.Tensor:
        step(stage, rewards)
        return torch.cat(
            [b.grad_data.detach().flatten().clone() for c in tr.policy for b in c.buffers]
        )

    def logp_shift_vs_advantage(stage: str) -> float:
        """Pearson correlation, over the stage's sequences, of advantage and the change of
        the sequence log-prob made by one training step (from the sampler's log-probs)."""
        sequences = step(stage, {stage: noisy(4)})
        return correlation([q.advantage for q in sequences], logp_shift(tr, sequences))

    out = {}
    for stage in ("decision", "clue"):
        other = "clue" if stage == "decision" else "decision"
        base = gradient(stage, {stage: noisy(1)})
        out[stage] = {
            "nonzero": bool(base.abs().sum() > 0),
            "other_stage_noise_changes_grad": not torch.equal(
                base, gradient(stage, {stage: noisy(1), other: noisy(2)})
            ),
            "own_noise_changes_grad": not torch.equal(base, gradient(stage, {stage: noisy(3)})),
            "logp_shift_vs_advantage": logp_shift_vs_advantage(stage),
        }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
