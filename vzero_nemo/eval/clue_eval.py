"""What the clue stage changed, judged by a FROZEN observer: held-out games whose clues come
from one policy and whose votes come from another, fixed one.

    python -m vzero_nemo.eval.clue_eval --recipe tiny_cpu --observer W0 \\
        --clues before=W0 --clues after=W1 --out runs/tiny_cpu/clue_eval.json [key=value ...]

A clue stage trains the clues against the current observer; the observer's own accuracy then
mixes two effects (better clues and a changed observer). Holding the observer fixed isolates
the clues: `W0` is the policy as it entered the clue stage (the main job passes the weights the
trainer saved at the decision -> clue switch, `checkpoint.save_stage_switches`), `W1` the
policy as it left it. Every `--clues` policy plays the same `eval.games` held-out games with
the same spy seats and the same sampling seed.

Per role (spy / civilian), over every clue turn of CLEVR games (denominator `clues`):
- `parsed_rate`: the clue could be read at all (an unreadable clue counts in every other
  denominator and in none of their numerators, so it lowers the contradiction rate too);
- `contradicts_rate`: the clue contradicts the civilians' (original) image, so it gives the
  speaker away (scripted check against the scene graph);
- `grounded_rate`: the clue names an object (colour + shape) of the speaker's OWN image;
- `repeat_rate`: the clue repeats an earlier player's clue of the same game word for word;
- `repeat_other_rate`: the same, counting only clues of OTHER players (in a later round a
  speaker may repeat itself; for the spy, repeating another player is the safe move it can
  see, as three of them are civilians);
- `vague_rate`: the clue names a colour or a shape but not both (`pretrain.vague_rate` teaches
  shape-only clues, which an edit rarely makes false);
- `plan_agree_rate`: the clue's reasoning is the plan `agree` (`game.clue_plan`; 0 without);
`reward_when_contradicting` / `reward_when_consistent`: the mean clue reward (Eq. 1, from
the frozen observer's votes) of the clues that contradict the civilians' image and of those
that do not, so whether the reward favours consistent clues is measured, not assumed;
`reward_when_repeating_other` / `reward_when_not_repeating_other`: the same split by whether
the clue repeats another player's (does the one move a spy can see pay?);
`reward_when_plan_agree` / `reward_when_plan_new`: the same split by the clue's plan
(`game.clue_plan`: does choosing `agree` pay this role?); `reward_when_unreadable`: that of
the clues that could not be read (does giving no clue pay?);
with several clue rounds, the same per role and round (`spy/round2/contradicts_rate`, ...);
and for the frozen observer (denominator `votes`): `vote_accuracy` (votes naming the spy),
`decision_accuracy` (per game) and `na_rate`. Counts are written next to each rate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from vzero_nemo.config import VZeroConfig
from vzero_nemo.data.pairs import GamePair
from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_SHAPES
from vzero_nemo.game.policies import contradicts_original
from vzero_nemo.game.prompts import PLAN_AGREE, plan_of
from vzero_nemo.training.rollout import Rollout, play_games

ROLES = ("spy", "civilian")
_COLORS, _SHAPES = set(CLEVR_COLORS), set(CLEVR_SHAPES)


def _normalise(clue: str) -> str:
    return " ".join(clue.lower().replace(".", " ").split())


def _grounded(clue: str, scene: dict[str, Any]) -> bool:
    words = clue.lower().split()
    return any(o["color"] in words and o["shape"] in words for o in scene["objects"])


def _vague(clue: str) -> bool:
    words = set(clue.lower().replace(".", " ").split())
    return bool(words & _COLORS) != bool(words & _SHAPES)


COUNTS = (
    "clues",
    "parsed",
    "contradicts",
    "grounded",
    "repeats",
    "repeats_other",
    "vague",
    "plan_agree",
)
REWARD_SUMS = (
    "reward_contradicting",
    "reward_consistent",
    "reward_repeating_other",
    "reward_not_repeating_other",
    "reward_plan_agree",
    "reward_plan_new",
    "reward_unreadable",
)
"""Sums of the clue reward (paper Eq. 1, from this game's votes) of the parsed clues that
contradict the civilians' image and of those that do not; of those that repeat another
player's clue and of those that do not; of those whose plan is `agree` and of the others; and
of the unreadable clues (the observer is shown "(no clue)")."""


def _zero_counts() -> dict[str, float]:
    return dict.fromkeys(COUNTS + REWARD_SUMS, 0)


def clue_counts(rollout: Rollout, pairs: list[GamePair]) -> dict[str, dict[str, float]]:
    """Per-role counts over every clue turn of the CLEVR games of `rollout`. With more than
    one clue round, also per role and round (`spy/round2`, ...): in a later round a speaker
    has heard every other player once, so what it does with their clues shows there."""
    counts = {r: _zero_counts() for r in ROLES}
    rounds = rollout.env.cfg.num_clue_rounds
    for g in range(rollout.env.num_games):
        truth = pairs[g].truth
        if truth.domain != "clevr":
            continue
        said: list[tuple[int, str]] = []  # (player, normalised clue) in speaking order
        for clue in rollout.env.transcript(g)["clues"]:
            role = "spy" if clue["role"] == "spy" else "civilian"
            keys = [role] + ([f"{role}/round{clue['round']}"] if rounds > 1 else [])
            cells = [counts.setdefault(key, _zero_counts()) for key in keys]
            text = clue["clue"]
            own = truth.modified if role == "spy" else truth.original
            hits: dict[str, float] = {"clues": 1}
            if text is not None:  # unparseable: counts in the denominator only
                contradicts = contradicts_original(text, truth)
                said_before = {t for _, t in said}
                said_by_others = {t for p, t in said if p != clue["player"]}
                normal = _normalise(text)
                repeats_other = normal in said_by_others
                plan_agree = plan_of(clue["reasoning"]) == PLAN_AGREE
                hits |= {
                    "parsed": 1,
                    "contradicts": contradicts,
                    "grounded": _grounded(text, own),
                    "repeats": normal in said_before,
                    "repeats_other": repeats_other,
                    "vague": _vague(text),
                    "plan_agree": plan_agree,
                }
                said.append((clue["player"], normal))
                if clue["reward"] is not None:
                    hits[REWARD_SUMS[0] if contradicts else REWARD_SUMS[1]] = clue["reward"]
                    hits[REWARD_SUMS[2] if repeats_other else REWARD_SUMS[3]] = clue["reward"]
                    hits[REWARD_SUMS[4] if plan_agree else REWARD_SUMS[5]] = clue["reward"]
            elif clue["reward"] is not None:
                hits["reward_unreadable"] = clue["reward"]
            for c in cells:
                for name, hit in hits.items():
                    c[name] += hit  # a bool counts 1; a reward adds its value
    return counts


def observer_counts(rollout: Rollout) -> dict[str, int]:
    m = rollout.env.metrics()
    keys = ("games", "decision_credit", "votes", "votes_spy", "votes_na")
    return {k: int(round(m[f"count/{k}"])) for k in keys}


def summarise(clues: dict[str, dict[str, float]], votes: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for role, c in clues.items():
        n = max(c["clues"], 1)
        out[f"{role}/clues"] = float(c["clues"])
        out[f"{role}/parsed_rate"] = c["parsed"] / n
        out[f"{role}/reward_when_unreadable"] = c["reward_unreadable"] / max(
            c["clues"] - c["parsed"], 1
        )
        out[f"{role}/contradicts_rate"] = c["contradicts"] / n
        out[f"{role}/grounded_rate"] = c["grounded"] / n
        out[f"{role}/repeat_rate"] = c["repeats"] / n
        out[f"{role}/repeat_other_rate"] = c["repeats_other"] / n
        out[f"{role}/vague_rate"] = c["vague"] / n
        out[f"{role}/plan_agree_rate"] = c["plan_agree"] / n
        consistent = c["parsed"] - c["contradicts"]
        out[f"{role}/reward_when_contradicting"] = c["reward_contradicting"] / max(
            c["contradicts"], 1
        )
        out[f"{role}/reward_when_consistent"] = c["reward_consistent"] / max(consistent, 1)
        out[f"{role}/reward_when_repeating_other"] = c["reward_repeating_other"] / max(
            c["repeats_other"], 1
        )
        out[f"{role}/reward_when_not_repeating_other"] = c["reward_not_repeating_other"] / max(
            c["parsed"] - c["repeats_other"], 1
        )
        out[f"{role}/reward_when_plan_agree"] = c["reward_plan_agree"] / max(c["plan_agree"], 1)
        out[f"{role}/reward_when_plan_new"] = c["reward_plan_new"] / max(
            c["parsed"] - c["plan_agree"], 1
        )
    out["observer/votes"] = float(votes["votes"])
    out["observer/vote_accuracy"] = votes["votes_spy"] / max(votes["votes"], 1)
    out["observer/na_rate"] = votes["votes_na"] / max(votes["votes"], 1)
    out["observer/games"] = float(votes["games"])
    out["observer/decision_accuracy"] = votes["decision_credit"] / max(votes["games"], 1)
    return out


def evaluate_clues(clue_model, observer, tokenizer, cfg: VZeroConfig, pairs, seed: int) -> dict:
    """Play `pairs` with `clue_model`'s clues and `observer`'s votes; per-role metrics."""
    generator = torch.Generator().manual_seed(seed)
    rollout = play_games(
        clue_model, pairs, cfg, tokenizer, seed=seed, generator=generator, vote_model=observer
    )
    return {
        "metrics": summarise(clue_counts(rollout, pairs), observer_counts(rollout)),
        "transcripts": [rollout.env.transcript(g) for g in range(min(2, len(pairs)))],
    }


def _labelled(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise ValueError(f"--clues {text!r} must look like LABEL=WEIGHTS_DIR")
    return label, path


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
    from vzero_nemo.training import checkpoint as ckpt
    from vzero_nemo.training import engine
    from vzero_nemo.training.data_source import GameSource
    from vzero_nemo.training.setup import build_chunks, build_stack

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.clue_eval")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--observer", required=True, help="weights of the frozen observer")
    parser.add_argument("--clues", action="append", required=True, help="LABEL=WEIGHTS_DIR")
    parser.add_argument("--out", required=True)
    args, cfg = config_from_argv(parser, argv)
    try:
        clue_weights = [_labelled(text) for text in args.clues]
    except ValueError as err:
        fail(str(err))
    for path in [args.observer, *(p for _, p in clue_weights)]:
        if not Path(path).is_dir():
            fail(f"weights directory {path!r} does not exist")
    if cfg.data.path is None:
        fail("data.path is not set; pass data.path=DIR (a shard directory with a val split)")
    stack = build_stack(cfg, with_reference=False)
    observer = build_chunks(cfg, stack.tokenizer)
    with engine.compat_scope():
        ckpt.load_weights(args.observer, observer)
    seed = cfg.eval.seed
    pairs = GameSource(
        cfg.data.val_path or cfg.data.path, dp_rank=0, dp_size=1, seed=seed, split="val",
        num_epochs=None, shuffle=False,
    ).next_pairs(cfg.eval.games)  # fmt: skip
    results = []
    for label, path in clue_weights:
        with engine.compat_scope():
            ckpt.load_weights(path, stack.policy)
        result = evaluate_clues(stack.policy, observer, stack.tokenizer, cfg, pairs, seed)
        results.append({"label": label, "clues": path, "observer": args.observer, **result})
        m = result["metrics"]
        print(
            f"[clue_eval] {label}: spy/civilian clues readable "
            f"{m['spy/parsed_rate']:.3f}/{m['civilian/parsed_rate']:.3f}, contradicting "
            f"{m['spy/contradicts_rate']:.3f}/{m['civilian/contradicts_rate']:.3f}, grounded "
            f"{m['spy/grounded_rate']:.3f}/{m['civilian/grounded_rate']:.3f}, repeated "
            f"{m['spy/repeat_rate']:.3f}/{m['civilian/repeat_rate']:.3f}, repeating another "
            f"{m['spy/repeat_other_rate']:.3f}/{m['civilian/repeat_other_rate']:.3f}, plan agree "
            f"{m['spy/plan_agree_rate']:.3f}/{m['civilian/plan_agree_rate']:.3f}, vague "
            f"{m['spy/vague_rate']:.3f}/{m['civilian/vague_rate']:.3f}; frozen observer "
            f"vote accuracy {m['observer/vote_accuracy']:.3f} ({int(m['observer/votes'])} votes)"
        )
        print(
            f"[clue_eval] {label}: mean spy clue reward when contradicting "
            f"{m['spy/reward_when_contradicting']:+.3f}, when consistent "
            f"{m['spy/reward_when_consistent']:+.3f}; repeating another player "
            f"{m['spy/reward_when_repeating_other']:+.3f} "
            f"({round(m['spy/clues'] * m['spy/repeat_other_rate'])} clues), not "
            f"{m['spy/reward_when_not_repeating_other']:+.3f}; plan agree "
            f"{m['spy/reward_when_plan_agree']:+.3f}, new {m['spy/reward_when_plan_new']:+.3f}; "
            f"unreadable {m['spy/reward_when_unreadable']:+.3f}"
        )
        by_round = [k for k in m if k.startswith("spy/round") and k.endswith("/contradicts_rate")]
        if by_round:
            rates = ", ".join(f"{k.split('/')[1]} {m[k]:.3f}" for k in sorted(by_round))
            print(f"[clue_eval] {label}: spy clues contradicting by round: {rates}")
    if stack.par.is_main:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
