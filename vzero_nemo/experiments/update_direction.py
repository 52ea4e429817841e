"""Which way one training iteration moves what the policy says, against the advantages.

    python -m vzero_nemo.experiments.update_direction --recipe tiny_cpu \\
        model.init_checkpoint=W spo.start_stage=clue data.path=DIR [key=value ...]

Runs ONE iteration of the real trainer from `model.init_checkpoint` (rollout, advantages,
reference log-probs, `train.steps_per_iteration` optimizer steps at `train.lr` without warmup
or decay; never resuming a run found in `checkpoint.dir`), then scores every trained sequence
again with the updated weights. Prints, per group (role, and for CLEVR clues whether the clue
contradicts the civilians' image), the number of sequences, their mean advantage and the mean
change of their sequence log-prob, and over all sequences the correlation of advantage and
log-prob change. A correct update raises what it rewarded: the correlation is positive and
contradicting spy clues (lower reward) lose more log-prob than consistent ones.

Whether that carries over to new games is what `python -m vzero_nemo.eval.clue_eval` measures
on held-out games; this tool checks the update itself on the games it trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence

import torch

from vzero_nemo.game.policies import contradicts_original
from vzero_nemo.training.batching import TrainSequence


def logp_shift(tr, sequences: Sequence[TrainSequence]) -> list[float]:
    """Sequence log-prob under the trainer's current policy minus the sampler's (`old_logp`),
    per sequence."""
    from vzero_nemo.training.trainer import score_sequences

    after = score_sequences(tr, tr.policy, list(sequences))
    return [sum(new) - sum(s.old_logp) for s, new in zip(sequences, after)]


def correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation of two equally long sequences (nan when either is constant)."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"correlation needs two sequences of the same length >= 2, got "
                         f"{len(xs)} and {len(ys)}")  # fmt: skip
    return float(torch.corrcoef(torch.tensor([list(xs), list(ys)], dtype=torch.float64))[0, 1])


def _group(sample, text_of, truths) -> str:
    if sample.stage != "clue":
        return "vote"
    text = text_of.get((sample.game_index, sample.round, sample.seat))
    truth = truths[sample.game_index]
    if not text or truth.domain != "clevr":
        return sample.role
    return (
        f"{sample.role}, {'contradicting' if contradicts_original(text, truth) else 'consistent'}"
    )


def measure(cfg) -> dict:
    """One iteration from `cfg.model.init_checkpoint`; the groups and the correlation."""
    from vzero_nemo.training.loop import setup_trainer, shutdown
    from vzero_nemo.training.trainer import run_iteration

    tr = setup_trainer(cfg)
    try:
        result = run_iteration(tr)
        sequences = result.trained
        shifts = logp_shift(tr, sequences)
    finally:
        shutdown()
    rollout, stage = result.rollout, result.metrics["stage"]
    sample_of = {  # each trained sequence's game, round, seat and role
        id(rollout.sequences[s.request_id]): s
        for s in rollout.samples
        if s.request_id in rollout.sequences
    }
    text_of = {
        (g, c["round"] - 1, c["player"] - 1): c["clue"]
        for g in range(rollout.env.num_games)
        for c in rollout.env.transcript(g)["clues"]
    }
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for seq, shift in zip(sequences, shifts):
        groups[_group(sample_of[id(seq)], text_of, rollout.env.truths)].append(
            (seq.advantage, shift)
        )
    advantages = [seq.advantage for seq in sequences]
    return {
        "stage": stage,
        "sequences": len(sequences),
        "correlation": correlation(advantages, shifts),
        "groups": {
            name: {
                "n": len(rows),
                "mean_advantage": sum(a for a, _ in rows) / len(rows),
                "mean_logp_shift": sum(d for _, d in rows) / len(rows),
            }
            for name, rows in sorted(groups.items())
        },
    }


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail

    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.experiments.update_direction",
        description=__doc__.splitlines()[0],
    )
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--json", default=None, help="also write the result here")
    args, cfg = config_from_argv(parser, argv)
    if cfg.model.init_checkpoint is None:
        fail("model.init_checkpoint is not set; pass the weights to start from")
    cfg.train.iterations = 1
    # A one-iteration cosine schedule would warm up and decay within the iteration's steps.
    cfg.train.lr_schedule, cfg.train.warmup_fraction = "constant", 0.0
    cfg.checkpoint.resume = "never"  # always from model.init_checkpoint
    out = measure(cfg)
    print(f"[update_direction] {out['stage']} stage, {out['sequences']} trained sequences")
    for name, g in out["groups"].items():
        print(
            f"  {name:<26} n={g['n']:<4} mean advantage {g['mean_advantage']:+.3f}  "
            f"mean log-prob change {g['mean_logp_shift']:+.4f}"
        )
    print(f"  correlation of advantage and log-prob change: {out['correlation']:+.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
