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

With `game.clue_plan=true` the clue groups are also split by plan (`agree` / `new`), and each
group reports the mean log-prob change of its plan token alone (the first token after
`<think>`, where the two plans part): how one iteration moves the choice itself.

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
from vzero_nemo.game.prompts import plan_of
from vzero_nemo.training.batching import TrainSequence


def token_shifts(tr, sequences: Sequence[TrainSequence]) -> list[list[float]]:
    """Per-token log-prob under the trainer's current policy minus the sampler's (`old_logp`),
    per sequence."""
    from vzero_nemo.training.trainer import score_sequences

    after = score_sequences(tr, tr.policy, list(sequences))
    return [[n - o for n, o in zip(new, s.old_logp)] for s, new in zip(sequences, after)]


def logp_shift(tr, sequences: Sequence[TrainSequence]) -> list[float]:
    """Sequence log-prob under the trainer's current policy minus the sampler's (`old_logp`),
    per sequence."""
    return [sum(d) for d in token_shifts(tr, sequences)]


def correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation of two equally long sequences (nan when either is constant)."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"correlation needs two sequences of the same length >= 2, got "
                         f"{len(xs)} and {len(ys)}")  # fmt: skip
    return float(torch.corrcoef(torch.tensor([list(xs), list(ys)], dtype=torch.float64))[0, 1])


def _group(sample, clue_of, truths, with_plan: bool = False) -> str:
    """`vote`, or the clue's role, then (`with_plan`) its plan, then whether it contradicts
    the civilians' image (CLEVR clues that could be read)."""
    if sample.stage != "clue":
        return "vote"
    clue = clue_of.get((sample.game_index, sample.round, sample.seat)) or {}
    name = sample.role
    if with_plan:
        name += f", {plan_of(clue.get('reasoning')) or 'no plan'}"
    text, truth = clue.get("clue"), truths[sample.game_index]
    if not text or truth.domain != "clevr":
        return name
    return f"{name}, {'contradicting' if contradicts_original(text, truth) else 'consistent'}"


THINK_OPEN = "<think>"  # a plan clue opens with it (`game.clue_plan`)


def plan_token_index(tokenizer) -> int:
    """Index of the plan token in a clue response: the tokens of `<think>` come first."""
    return len(tokenizer.encode(THINK_OPEN))


def measure(cfg) -> dict:
    """One iteration from `cfg.model.init_checkpoint`; the groups and the correlation."""
    from vzero_nemo.training.loop import setup_trainer, shutdown
    from vzero_nemo.training.trainer import run_iteration

    with_plan = cfg.game.clue_plan
    tr = setup_trainer(cfg)
    try:
        result = run_iteration(tr)
        sequences = result.trained
        per_token = token_shifts(tr, sequences)
        plan_at = plan_token_index(tr.tokenizer)
    finally:
        shutdown()
    shifts = [sum(d) for d in per_token]
    rollout, stage = result.rollout, result.metrics["stage"]
    sample_of = {  # each trained sequence's game, round, seat and role
        id(rollout.sequences[s.request_id]): s
        for s in rollout.samples
        if s.request_id in rollout.sequences
    }
    clue_of = {
        (g, c["round"] - 1, c["player"] - 1): c
        for g in range(rollout.env.num_games)
        for c in rollout.env.transcript(g)["clues"]
    }
    groups: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for seq, shift, tokens in zip(sequences, shifts, per_token):
        sample = sample_of[id(seq)]
        plan_shift = tokens[plan_at] if len(tokens) > plan_at else float("nan")
        groups[_group(sample, clue_of, rollout.env.truths, with_plan)].append(
            (seq.advantage, shift, plan_shift)
        )
    advantages = [seq.advantage for seq in sequences]
    out_groups: dict[str, dict] = {}
    for name, rows in sorted(groups.items()):
        out_groups[name] = {
            "n": len(rows),
            "mean_advantage": sum(r[0] for r in rows) / len(rows),
            "mean_logp_shift": sum(r[1] for r in rows) / len(rows),
        }
        if with_plan and name != "vote":
            out_groups[name]["mean_plan_token_logp_shift"] = sum(r[2] for r in rows) / len(rows)
    return {
        "stage": stage,
        "sequences": len(sequences),
        "correlation": correlation(advantages, shifts),
        "groups": out_groups,
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
        plan = g.get("mean_plan_token_logp_shift")
        print(
            f"  {name:<33} n={g['n']:<4} mean advantage {g['mean_advantage']:+.3f}  "
            f"mean log-prob change {g['mean_logp_shift']:+.4f}"
            + ("" if plan is None else f"  of the plan token {plan:+.4f}")
        )
    print(f"  correlation of advantage and log-prob change: {out['correlation']:+.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
