"""Scripted policies that answer GameBatch requests from the ground truth (tests and demos).

- `oracle`: civilians describe an object of the original image; the spy describes an object
  it sees that was changed (preferring one whose new look contradicts the original); the
  observer (or a civilian voter) votes for the player with the most clues that contradict
  the original image, N/A when no clue does. clevr works from the scene graphs; chart and real
  work from the change log: civilians state a `before` fact, the spy the matching `after`
  fact, and a clue contradicts the original when it states an `after` fact that is not also
  a `before` fact.
- `random`: clues are random attribute words, votes a uniformly random player.

Both answer in the configured format (`<think>..</think><answer>..</answer>` or `\\boxed{}`)
and draw from one seeded RNG in request order, so a run is reproducible.

    policy = make_policy("oracle", cfg.game, seed=0)
    play(env, policy)            # drives the GameBatch to done
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from vzero_nemo.config import GameConfig
from vzero_nemo.data.schema import (
    CLEVR_COLORS,
    CLEVR_MATERIALS,
    CLEVR_SHAPES,
    CLEVR_SIZES,
    Truth,
)
from vzero_nemo.game.env import GameBatch, Request

Policy = Callable[[Request, Truth], str]
_CLEVR_VOCAB = {
    **{w: "color" for w in CLEVR_COLORS},
    **{w: "shape" for w in CLEVR_SHAPES},
    **{w: "material" for w in CLEVR_MATERIALS},
    **{w: "size" for w in CLEVR_SIZES},
}
_RANDOM_WORDS = ("red", "blue", "big", "small", "left", "right", "bar", "line", "tree", "car")


def describe_object(obj: dict[str, Any]) -> str:
    """CLEVR object description, e.g. "small red rubber cube"."""
    return f"{obj['size']} {obj['color']} {obj['material']} {obj['shape']}"


def short_phrase(obj: dict[str, Any]) -> str:
    """CLEVR object in the short form of a clue, e.g. "red cube"."""
    return f"{obj['color']} {obj['shape']}"


def describe_fact(target: Any, attrs: dict[str, Any]) -> str:
    """Change-log fact, e.g. "B: value 12" or "car: color red"."""
    body = ", ".join(f"{k} {v}" for k, v in sorted(attrs.items()))
    return f"{target}: {body}" if body else f"{target}: none"


def clevr_contradicts(clue: str, scene: dict[str, Any]) -> bool:
    """True when no object of `scene` has every CLEVR attribute word the clue names."""
    wanted = {}
    for word in clue.lower().split():
        key = _CLEVR_VOCAB.get(word.strip(".,;:!?"))
        if key is not None:
            wanted[key] = word.strip(".,;:!?")
    if not wanted:
        return False
    return not any(all(o.get(k) == v for k, v in wanted.items()) for o in scene["objects"])


def _facts(truth: Truth) -> tuple[list[str], list[str]]:
    before = [
        describe_fact(c.target if c.target is not None else c.kind, c.before) for c in truth.changes
    ]
    after = [
        describe_fact(c.target if c.target is not None else c.kind, c.after) for c in truth.changes
    ]
    return before, after


def contradicts_original(clue: str, truth: Truth) -> bool:
    if truth.domain == "clevr":
        return clevr_contradicts(clue, truth.original)
    before, after = _facts(truth)
    return clue in after and clue not in before


def _format(answer_format: str, reasoning: str, answer: str) -> str:
    if answer_format == "boxed":
        return f"{reasoning} \\boxed{{{answer}}}"
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


class OraclePolicy:
    """Plays from the truth (see the module docstring)."""

    def __init__(self, cfg: GameConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)

    def __call__(self, request: Request, truth: Truth) -> str:
        if request.stage == "decision":
            return self._vote(request, truth)
        if request.role == "spy":
            clue = self._spy_clue(request, truth)
        else:
            clue = self._civilian_clue(truth)
        return _format(self.cfg.answer_format, f"I describe what I see: {clue}.", clue)

    def _civilian_clue(self, truth: Truth) -> str:
        if truth.domain == "clevr":
            return describe_object(self.rng.choice(truth.original["objects"]))
        return self.rng.choice(_facts(truth)[0])

    def _spy_clue(self, request: Request, truth: Truth) -> str:
        if request.image == "blank":
            earlier = [c.text for c in request.clues if c.parse_ok]
            return self.rng.choice(earlier) if earlier else self._civilian_clue(truth)
        if truth.domain != "clevr":
            return self.rng.choice(_facts(truth)[1])
        originals = {o["id"]: o for o in truth.original["objects"]}
        changed = [o for o in truth.modified["objects"] if o != originals.get(o["id"])]
        telling = [o for o in changed if clevr_contradicts(describe_object(o), truth.original)]
        pool = telling or changed or truth.modified["objects"]
        return describe_object(self.rng.choice(pool))

    def _vote(self, request: Request, truth: Truth) -> str:
        n = self.cfg.num_players
        counts = [0] * n
        for clue in request.clues:
            if clue.seat != request.seat and contradicts_original(clue.text, truth):
                counts[clue.seat] += 1
        top = max(counts)
        if top == 0:
            if self.cfg.allow_na:
                return _format(self.cfg.answer_format, "No clue contradicts my image.", "N/A")
            answer = self.rng.choice([s for s in range(n) if s != request.seat]) + 1
        else:
            answer = self.rng.choice([s for s in range(n) if counts[s] == top]) + 1
        reason = f"Player {answer}'s clue does not match my image."
        return _format(self.cfg.answer_format, reason, str(answer))


class RandomPolicy:
    """Random attribute words as clues, uniformly random players as votes."""

    def __init__(self, cfg: GameConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)

    def __call__(self, request: Request, truth: Truth) -> str:
        if request.stage == "decision":
            answer = str(self.rng.randrange(self.cfg.num_players) + 1)
        elif truth.domain == "clevr":
            answer = f"{self.rng.choice(CLEVR_COLORS)} {self.rng.choice(CLEVR_SHAPES)}"
        else:
            answer = " ".join(self.rng.sample(_RANDOM_WORDS, 2))
        return _format(self.cfg.answer_format, "A guess.", answer)


POLICIES = {"oracle": OraclePolicy, "random": RandomPolicy}


def make_policy(name: str, cfg: GameConfig, seed: int = 0) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {list(POLICIES)}")
    return POLICIES[name](cfg, seed)


def play(env: GameBatch, policy: Policy) -> None:
    """Drive `env` to done, answering every request with `policy(request, truth)`."""
    while not env.done:
        requests = env.pending_requests()
        env.submit({r.request_id: policy(r, env.truths[r.game_index]) for r in requests})


__all__ = [
    "OraclePolicy",
    "POLICIES",
    "Policy",
    "RandomPolicy",
    "clevr_contradicts",
    "contradicts_original",
    "describe_fact",
    "describe_object",
    "make_policy",
    "play",
    "short_phrase",
]
