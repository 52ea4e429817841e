"""Pre-train the tiny VLM on generic grounding skills: a stand-in for VLM pre-training.

    python -m vzero_nemo.training.pretrain --recipe tiny_cpu --out runs/tiny_cpu/pretrained \\
        data.path=runs/tiny_cpu/data pretrain.steps=1000

No pretrained VLM weights are reachable offline, so the tiny model learns, from the data
generators' ground truth, what any instruction-tuned VLM already knows:

- caption: list every object of the image in reading order;
- describe: in the game's own clue prompt (any seat, role and history), name one object of
  the image it is shown: `<answer>red cube</answer>`; with probability `pretrain.agree_rate`
  an object an earlier clue already named, when one is in the image (whatever the role);
  with probability `pretrain.vague_rate` the shape of an object alone (`<answer>cube</answer>`),
  a clue that an edit rarely makes false; with `game.clue_plan` the answer follows its plan,
  `<think>agree</think>` when it repeats an earlier clue, else `<think>new</think>`;
- grounding QA: "Is there a <colour> <shape>?" -> `<think>red cube: red sphere no.</think>
  <answer>no</answer>`: restate the phrase, name the object of the image most like it, then
  compare (the reasoning of one clue check below);
- answer format of a vote, with grounded reasoning: in the game's vote prompt, restate each
  clue, name the object of the image most like it and say whether they are the same, then
  list the players whose clues are wrong of the image (`<think>1 red cube: red cube yes.
  2 large blue rubber sphere: blue cube no. ... wrong: 2.</think>`), then answer with a
  player number drawn UNIFORMLY AT RANDOM. The target never names the spy: that a wrong clue
  points to the spy is left to self-play, which only has to learn to use the list;
- fact checking: the same statements asked "Which players said something wrong?", answered
  with the list itself (a fact of the image; the statements come from no game, so no spy).

Why "most like it" rather than a bare yes/no: fetching the most similar object is what one
attention head over the image tokens does, and naming it supervises that lookup on every
check; the verdict is then a comparison of two adjacent phrases. A 1.7M-parameter model
trained for a bare yes/no verdict, after a caption or right after the phrase, stayed at
chance on it (0.47-0.58 after 1000 steps).

Measured (1000 steps, batch 32, 1200-pair tiny data set, seed 0, ~620 s on 2 cores): held-out
describe 1.0, exists 1.0, per-clue check 0.98, exact wrong-set 0.64.

The model is trained with the same megatron-core schedule, optimizer and dist-checkpoint code
as self-play; the output is a weights-only checkpoint for `model.init_checkpoint`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vzero_nemo.config import PRETRAIN_TASKS, VZeroConfig
from vzero_nemo.data.pairs import GamePair
from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_SHAPES
from vzero_nemo.game.policies import clevr_contradicts, describe_object, short_phrase
from vzero_nemo.game.prompts import PLAN_AGREE, PLAN_NEW, PromptBuilder, messages
from vzero_nemo.game.roles import Clue
from vzero_nemo.models.chat import render_chat
from vzero_nemo.training import checkpoint as ckpt
from vzero_nemo.training import engine
from vzero_nemo.training.batching import (
    MicroBatch,
    TrainSequence,
    make_length_grouped_micro_batches,
)

TASKS = PRETRAIN_TASKS
# Sampling weights: the caption is the densest visual supervision, so it gets half the batch.
TASK_WEIGHTS = {"caption": 2.0, "describe": 1.0, "exists": 2.0, "vote": 2.0, "wrong": 1.5}
# Share of vote-example clues that are true of the civilians' image (the rest name an absent
# object), and of clues in the scripted oracle's long form ("large red rubber cube").
TRUE_CLUE_RATE = 0.7
WRONG_QUESTION = " Which players said something wrong? Use <answer></answer>."
LONG_CLUE_RATE = 0.3


@dataclass(frozen=True, slots=True)
class Example:
    task: str
    messages: list
    image: str
    target: str


def _caption(scene: dict) -> str:
    """Every object of `scene` in reading order: "red cube, blue sphere, ..."."""
    objects = sorted(scene["objects"], key=lambda o: (o["center"][1], o["center"][0]))
    return ", ".join(short_phrase(o) for o in objects)


def _present(scene: dict) -> set[str]:
    return {short_phrase(o) for o in scene["objects"]}


def _absent_phrase(scene: dict, rng: random.Random) -> str:
    present = _present(scene)
    while True:
        phrase = f"{rng.choice(CLEVR_COLORS)} {rng.choice(CLEVR_SHAPES)}"
        if phrase not in present:
            return phrase


def _vague_vote_clue(scene: dict, rng: random.Random) -> str:
    """A shape alone, true of `scene` or (when some shape is absent from it) false."""
    absent = [w for w in CLEVR_SHAPES if clevr_contradicts(w, scene)]
    if rng.random() < TRUE_CLUE_RATE or not absent:
        return rng.choice(scene["objects"])["shape"]
    return rng.choice(absent)


def _vote_clue(scene: dict, rng: random.Random, vague_rate: float = 0.0) -> str:
    """A clue as players give them: true or false of `scene`, short or long form, or (at
    `vague_rate`) a shape alone."""
    if vague_rate > 0 and rng.random() < vague_rate:
        return _vague_vote_clue(scene, rng)
    if rng.random() < TRUE_CLUE_RATE:
        obj = rng.choice(scene["objects"])
        return describe_object(obj) if rng.random() < LONG_CLUE_RATE else short_phrase(obj)
    color, shape = _absent_phrase(scene, rng).split()
    if rng.random() < LONG_CLUE_RATE:
        obj = rng.choice(scene["objects"])
        return describe_object({**obj, "color": color, "shape": shape})
    return f"{color} {shape}"


def _describe_target(
    scene: dict,
    earlier: list[Clue],
    agree_rate: float,
    rng: random.Random,
    vague_rate: float = 0.0,
) -> tuple[str, bool]:
    """(clue, agreed): an object of `scene`; with probability `agree_rate`, one an earlier
    clue already named (when some earlier clue is true of `scene`; `agreed` is then True):
    reading the history is then part of the describe skill, for both roles alike. With
    probability `vague_rate`, its shape alone."""
    agreeable = sorted({c.text for c in earlier} & _present(scene))
    if agree_rate > 0 and agreeable and rng.random() < agree_rate:
        return rng.choice(agreeable), True
    obj = rng.choice(scene["objects"])
    if vague_rate > 0 and rng.random() < vague_rate:
        return obj["shape"], False
    return short_phrase(obj), False


def describe_answer(clue: str, agreed: bool, clue_plan: bool) -> str:
    """The describe target: `<answer>clue</answer>`, or with `game.clue_plan` the plan first,
    `<think>agree</think><answer>clue</answer>` / `<think>new</think><answer>clue</answer>`."""
    answer = f"<answer>{clue}</answer>"
    if not clue_plan:
        return answer
    return f"<think>{PLAN_AGREE if agreed else PLAN_NEW}</think>{answer}"


def most_like(phrase: str, scene: dict) -> str:
    """The object of `scene` most like the clue `phrase`, short form: the same colour and
    shape if there is one, else the same colour, else the same shape, else the first in
    reading order (ties: reading order)."""
    words = set(phrase.lower().split())
    objects = sorted(scene["objects"], key=lambda o: (o["center"][1], o["center"][0]))
    best = max(objects, key=lambda o: 2 * (o["color"] in words) + (o["shape"] in words))
    return short_phrase(best)


def wrong_players(clues: list[Clue], scene: dict) -> list[str]:
    """Players (1-based, each once, in clue order) whose clues are wrong of `scene`."""
    wrong: list[str] = []
    for c in clues:
        if clevr_contradicts(c.text, scene) and str(c.seat + 1) not in wrong:
            wrong.append(str(c.seat + 1))
    return wrong


def check_clues(clues: list[Clue], scene: dict) -> str:
    """The vote's reasoning: each clue restated, the object of `scene` most like it and
    whether they are the same, then the players whose clues are wrong of `scene`:
    "1 red cube: red cube yes. 2 blue cube: blue sphere no. wrong: 2."."""
    checks = [
        f"{c.seat + 1} {c.text}: {most_like(c.text, scene)} "
        f"{'no' if clevr_contradicts(c.text, scene) else 'yes'}."
        for c in clues
    ]
    return f"{' '.join(checks)} wrong: {' '.join(wrong_players(clues, scene)) or 'none'}."


def make_example(pair: GamePair, cfg: VZeroConfig, rng: random.Random, task: str) -> Example:
    """One supervised example of `task` on `pair` (clevr truth with object lists)."""
    if pair.truth.domain != "clevr":
        raise ValueError(f"pre-training tasks need clevr pairs, got domain {pair.truth.domain!r}")
    game = cfg.game
    builder = PromptBuilder(game)
    n = game.num_players
    original, modified = pair.truth.original, pair.truth.modified
    if task == "describe":
        seat = rng.randrange(n)
        role = rng.choice(["civilian", "spy"])
        scene = modified if role == "spy" else original
        round_index = rng.randrange(game.num_clue_rounds)
        earlier = [
            Clue(r, s, short_phrase(rng.choice(original["objects"])), True)
            for r in range(round_index + 1)
            for s in range(n)
            if (r, s) < (round_index, seat)
        ]
        # With game.spy_knows_edit the spy's prompt names the edited objects; the target
        # ignores it (any object of the spy's image), so what the spy does with it is
        # learnt in the clue stage alone.
        edited = builder.edited_note(pair.truth, role)
        text = builder.clue_text("clevr", seat, role, round_index, earlier, (), edited)
        p = cfg.pretrain
        clue, agreed = _describe_target(scene, earlier, p.agree_rate, rng, p.vague_rate)
        target = describe_answer(clue, agreed, game.clue_plan)
        image = "modified" if role == "spy" else "original"
        return Example(task, messages(builder.system, text), image, target)
    if task == "caption":
        # Every object in reading order (cells row by row): dense, deterministic supervision
        # that can only be predicted from the image.
        text = "List the objects. Use <answer></answer>."
        target = f"<answer>{_caption(original)}</answer>"
        return Example(task, messages(None, text), "original", target)
    if task == "exists":
        yes = rng.random() < 0.5
        phrase = (
            short_phrase(rng.choice(original["objects"])) if yes else _absent_phrase(original, rng)
        )
        text = f"Is there a {phrase}? Use <answer></answer>."
        # The same reasoning as one clue check of a vote.
        verdict = "yes" if yes else "no"
        target = f"<think>{phrase}: {most_like(phrase, original)} {verdict}.</think><answer>{verdict}</answer>"
        return Example(task, messages(None, text), "original", target)
    if task in ("vote", "wrong"):
        clues = [
            Clue(r, s, _vote_clue(original, rng, cfg.pretrain.vague_rate), True)
            for r in range(game.num_clue_rounds)
            for s in range(n)
        ]
        text = builder.vote_text("clevr", -1, "observer", clues, ())
        if task == "vote":
            answer = str(rng.randrange(n) + 1)  # format only: never the spy
        else:
            # The same statements, asked which are wrong (a fact of the image, not the spy).
            text = text.removesuffix(builder.vote_tail) + WRONG_QUESTION
            answer = " ".join(wrong_players(clues, original)) or "none"
        target = f"<think>{check_clues(clues, original)}</think><answer>{answer}</answer>"
        return Example(task, messages(builder.system, text), "original", target)
    raise ValueError(f"unknown pre-training task {task!r}; expected one of {TASKS}")


def to_sequence(example: Example, pair: GamePair, cfg: VZeroConfig, tokenizer) -> TrainSequence:
    prompt = render_chat(example.messages, tokenizer, pair.image(example.image), cfg.model)
    target = tokenizer.encode(example.target) + [tokenizer.im_end_id]
    return TrainSequence(prompt, target, [0.0] * len(target), meta={"task": example.task})


def nll_loss(mb: MicroBatch, ce_BT: torch.Tensor):
    """Summed token NLL of the targets; megatron divides by the global token count."""
    mask = mb.loss_mask
    total = (ce_BT.float() * mask).sum()
    tokens = mask.sum()
    return total, tokens.round().to(torch.int), {"nll": torch.stack([total.detach(), tokens])}


@dataclass(slots=True)
class PretrainResult:
    steps: int
    final_nll: float
    seconds: float
    skills: dict[str, float]


def _answer(text: str) -> str:
    start, end = text.rfind("<answer>"), text.rfind("</answer>")
    return text[start + len("<answer>") : end].strip() if 0 <= start < end else ""


_VERDICT = re.compile(r"\b(yes|no)\.")


def _verdicts(text: str) -> list[str]:
    start, end = text.find("<think>"), text.find("</think>")
    return _VERDICT.findall(text[start:end] if 0 <= start < end else "")


SKILLS = {"describe": "describe", "exists": "exists", "vote": "check", "wrong": "wrong"}
"""Pre-training task -> the skill measured on it (the vote task measures per-clue checks)."""


def score_skills(
    stack, cfg: VZeroConfig, pairs: list[GamePair], seed: int = 0
) -> dict[str, list[tuple[int, int]]]:
    """Greedy answers on `pairs`: per skill, one (correct, total) per pair, in pair order
    (chance in brackets):
    - describe: naming an object of the image shown ("grounded", ~5/24), or the shape of one
      (a vague clue, true of the image);
    - exists: a correct yes/no (0.5);
    - check: in vote prompts, the clues whose yes/no verdict is right (a missing verdict
      counts as wrong; 0.5 for a coin, 0.7 for always "yes");
    - wrong: answering exactly the set of players whose clues are wrong (0.24 for always
      "none")."""
    from vzero_nemo.generation.generate import generate
    from vzero_nemo.generation.sampling import SamplingParams
    from vzero_nemo.models.batch import collate_prompts

    rng = random.Random(seed)
    tok = stack.tokenizer
    out: dict[str, list[tuple[int, int]]] = {}
    for task, skill in SKILLS.items():
        examples = [(make_example(p, cfg, rng, task), p) for p in pairs]
        prompts = [render_chat(e.messages, tok, p.image(e.image), cfg.model) for e, p in examples]
        batch = collate_prompts(prompts, tok, cfg.model)
        params = SamplingParams(
            temperature=0.0, max_new_tokens=cfg.rollout.max_vote_tokens, stop_token_ids=tok.stop_ids
        )
        gen = generate(stack.policy, batch, params, torch.Generator().manual_seed(seed))
        out[skill] = [
            _score_answer(
                task, example, pair, tok.decode([t for t in ids if t not in tok.stop_ids])
            )
            for (example, pair), ids in zip(examples, gen.token_ids)
        ]
    return out


def _score_answer(task: str, example: Example, pair: GamePair, text: str) -> tuple[int, int]:
    if task == "vote":
        want, said = _verdicts(example.target), _verdicts(text)
        return sum(w == s for w, s in zip(want, said)), len(want)
    said = _answer(text)
    if task == "describe":
        scene = pair.truth.modified if example.image == "modified" else pair.truth.original
        return int(said in _present(scene) or _true_shape(said, scene)), 1
    return int(said == _answer(example.target)), 1


def _true_shape(said: str, scene: dict) -> bool:
    """`said` is the shape of an object of `scene` (a vague describe answer)."""
    return any(said == o["shape"] for o in scene["objects"])


def evaluate_skills(stack, cfg: VZeroConfig, pairs: list[GamePair], seed: int = 0) -> dict:
    """`skill/<name>_accuracy` over `pairs` (see `score_skills`)."""
    scores = score_skills(stack, cfg, pairs, seed)
    return {
        f"skill/{name}_accuracy": sum(c for c, _ in items) / max(sum(t for _, t in items), 1)
        for name, items in scores.items()
    }


def pretrain(
    cfg: VZeroConfig,
    pairs: list[GamePair],
    out_dir: str,
    eval_pairs: list[GamePair] | None = None,
    log_every: int = 25,
) -> PretrainResult:
    """Supervised pre-training (`cfg.pretrain`) on `pairs`; saves a weights-only checkpoint to
    `out_dir` and measures the skills on `eval_pairs` (held out), also every
    `pretrain.eval_every` steps if > 0."""
    from vzero_nemo.training.setup import build_stack

    p = cfg.pretrain
    steps, tasks, eval_every, seed = p.steps, p.tasks, p.eval_every, p.seed
    stack = build_stack(cfg, with_reference=False, schedule=engine.LRSchedule.pretraining(cfg))
    groups = p.length_groups if cfg.parallel.pipeline_model_parallel_size == 1 else 1
    rng = random.Random(seed + 1000 * stack.par.dp_rank)
    start = time.perf_counter()
    nll = float("nan")
    for step in range(steps):
        seqs = []
        for _ in range(p.batch_size):
            pair = rng.choice(pairs)
            task = rng.choices(tasks, weights=[TASK_WEIGHTS[t] for t in tasks])[0]
            seqs.append(to_sequence(make_example(pair, cfg, rng, task), pair, cfg, stack.tokenizer))
        batches = make_length_grouped_micro_batches(
            seqs, stack.tokenizer, cfg.model, cfg.train.micro_batch_size, groups
        )
        engine.zero_grads(stack.policy, stack.optimizer)
        result = engine.run_schedule(
            stack.policy, batches, nll_loss, forward_only=False, device=stack.par.device
        )
        nll = engine.reduce_metrics(result.metrics)["nll"]
        engine.optimizer_step(stack.optimizer, stack.scheduler)
        if stack.par.is_main and (step % log_every == 0 or step == steps - 1):
            elapsed = time.perf_counter() - start
            print(f"[pretrain] step {step + 1}/{steps} nll {nll:.3f} ({elapsed:.0f} s)", flush=True)
        if eval_every and eval_pairs and (step + 1) % eval_every == 0 and step + 1 < steps:
            skills = evaluate_skills(stack, cfg, eval_pairs, seed)
            if stack.par.is_main:
                print(f"[pretrain] step {step + 1} held-out skills {skills}", flush=True)
    with engine.compat_scope():
        ckpt.save_weights(out_dir, stack.policy)
    seconds = time.perf_counter() - start
    skills = evaluate_skills(stack, cfg, eval_pairs, seed) if eval_pairs else {}
    return PretrainResult(steps=steps, final_nll=nll, seconds=seconds, skills=skills)


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv, fail
    from vzero_nemo.training.data_source import GameSource

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.training.pretrain")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--out", required=True, help="weights checkpoint directory to write")
    args, cfg = config_from_argv(parser, argv)
    if cfg.data.path is None or not Path(cfg.data.path).is_dir():
        fail(f"data.path={cfg.data.path!r} is not a shard directory; pass data.path=DIR")
    assert cfg.data.seed is not None
    p = cfg.pretrain
    source = GameSource(cfg.data.path, dp_rank=0, dp_size=1, seed=cfg.data.seed)
    pairs = source.next_pairs(p.num_pairs)
    held_out = GameSource(
        cfg.data.path, dp_rank=0, dp_size=1, seed=cfg.data.seed, split="val", shuffle=False
    ).next_pairs(p.eval_pairs)
    result = pretrain(cfg, pairs, args.out, eval_pairs=held_out)
    print(
        f"[pretrain] done: {result.steps} steps, nll {result.final_nll:.3f}, "
        f"{result.seconds:.0f} s -> {args.out}; held-out skills {result.skills}"
    )
    (Path(args.out) / "skills.json").write_text(json.dumps(result.skills, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
