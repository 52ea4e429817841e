"""Batched "Who Is the Spy?" environment: B games advance turn by turn, in text.

The environment deals in prompts (chat messages naming an image) and completion text; tokens,
images and sampling are the generator's business. Protocol:

    env = GameBatch(truths, cfg.game, seed, grpo=cfg.grpo)   # B = len(truths) games
    while not env.done:
        requests = env.pending_requests()    # every request of the current turn
        completions = generate(requests)      # {request_id: completion_text} for all of them
        env.submit(completions)
    samples = env.training_samples()          # one TrainingSample per request ever issued
    metrics = env.metrics()                   # rates with stated denominators + raw counts
    # across ranks: all-reduce env.counts() (sums), then metrics_from_counts(summed)
    report = env.transcript(0)                # readable history of game 0

Turns: `num_clue_rounds * num_players` clue turns (one seat speaking in all B games, so B
requests each, seats in order), then one decision turn: B * num_votes observer requests
(`vote_mode=observer`) or B * num_civilians civilian votes (`vote_mode=civilians`).

Request ids are unique within a batch: `g{game}/r{round}/s{seat}` (clue), `g{game}/vote/o{k}`
(k-th observer sample), `g{game}/vote/s{seat}` (civilian vote); rounds and seats 0-based.

What a seat sees: its own image (`Request.image`: original for civilians and the observer,
modified or blank for the spy), every earlier clue of its game as answer text only, and its own
earlier reasoning. Spy seats come from `random.Random(seed)` (see roles.draw_spy_seats); the
truths are used for the domain (prompt wording) and reports, never for rewards. Give every
batch its own seed (e.g. derived from train.seed, the iteration and the data-parallel rank).

Training samples: clue samples carry the seat's Eq. 1 reward (the same for all its clue
turns) and group_id `clue/spy` or `clue/civilian` (Role-Advantage Estimation baselines are
per role over the whole global batch); decision samples carry the vote's reward and group_id
`decision/g{game}` (the GRPO group: the num_votes observer samples, or the civilians' votes, of
one game).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from vzero_nemo.config import GameConfig, GRPOConfig
from vzero_nemo.data.schema import Truth
from vzero_nemo.game import prompts
from vzero_nemo.game.metrics import COUNT_KEYS, metrics_from_counts
from vzero_nemo.game.parsing import NA, Vote, parse_clue, parse_vote
from vzero_nemo.game.rewards import (
    clue_rewards,
    count_votes,
    decision_credit,
    decision_reward,
)
from vzero_nemo.game.roles import (
    CLUE_PLACEHOLDER,
    OBSERVER_SEAT,
    Clue,
    ImageName,
    Role,
    StageName,
    clue_turns,
    draw_spy_seats,
    image_for,
    role_of,
    validate_game_config,
    voter_seats,
)


class Request(NamedTuple):
    """One prompt to complete. seat: 0-based, -1 for the observer. round: 0-based clue round,
    -1 for votes. image: which image of the pair the model side attaches. messages: HF chat
    list with exactly one {"type": "image"} entry. clues: the public clues this seat has seen
    (for scripted policies and reports; already contained in messages)."""

    request_id: str
    game_index: int
    seat: int
    role: Role
    stage: StageName
    round: int
    image: ImageName
    messages: list[dict[str, Any]]
    clues: tuple[Clue, ...]


class TrainingSample(NamedTuple):
    """One completed request with its reward. parse_ok: the clue or vote was parseable (an N/A
    vote is parseable)."""

    request_id: str
    game_index: int
    seat: int
    role: Role
    stage: StageName
    round: int
    reward: float
    group_id: str
    parse_ok: bool


class _ClueRecord(NamedTuple):
    request_id: str
    round: int
    seat: int
    completion: str
    clue: str | None
    reasoning: str
    format_ok: bool


class _VoteRecord(NamedTuple):
    request_id: str
    seat: int
    role: Role
    completion: str
    vote: Vote
    format_ok: bool


@dataclass(slots=True)
class _Outcome:
    votes_received: list[int]
    clue_rewards: list[float]
    vote_rewards: list[float]
    credit: float


class GameBatch:
    """B games of one configuration advanced in lock-step (see the module docstring)."""

    def __init__(
        self,
        truths: Sequence[Truth],
        cfg: GameConfig,
        seed: int,
        *,
        grpo: GRPOConfig | None = None,
    ) -> None:
        """grpo: reward settings (beta, lam, decision_reward); None means GRPOConfig()'s
        paper values."""
        validate_game_config(cfg)
        if len(truths) == 0:
            raise ValueError("GameBatch needs at least one Truth (one per game)")
        for i, truth in enumerate(truths):
            if not isinstance(truth, Truth):
                raise ValueError(f"truths[{i}] is a {type(truth).__name__}, not a Truth")
        self.truths = list(truths)
        self.cfg = cfg
        self.seed = seed
        self.grpo = grpo if grpo is not None else GRPOConfig()
        if self.grpo.decision_reward not in ("paper", "official_code"):
            raise ValueError(f"grpo.decision_reward={self.grpo.decision_reward!r} is unknown")
        self.num_games = len(truths)
        self.spy_seats = draw_spy_seats(self.num_games, cfg.num_players, cfg.num_spies, seed)
        self._turns = clue_turns(cfg.num_players, cfg.num_clue_rounds)
        self._turn = 0
        self._clues: list[list[Clue]] = [[] for _ in truths]
        self._notes = [[[] for _ in range(cfg.num_players)] for _ in truths]
        self._clue_records: list[list[_ClueRecord]] = [[] for _ in truths]
        self._vote_records: list[list[_VoteRecord]] = [[] for _ in truths]
        self._prompts = prompts.PromptBuilder(cfg)
        self._pending: list[Request] | None = None
        self._outcomes: list[_Outcome] | None = None

    # ------------------------------------------------------------------ turn loop
    @property
    def num_turns(self) -> int:
        """Clue turns plus the decision turn."""
        return len(self._turns) + 1

    @property
    def turn(self) -> int:
        """Index of the current turn (== num_turns when done)."""
        return self._turn

    @property
    def done(self) -> bool:
        return self._turn >= self.num_turns

    @property
    def stage(self) -> StageName | None:
        """Stage of the current turn, None when done."""
        if self.done:
            return None
        return "clue" if self._turn < len(self._turns) else "decision"

    def pending_requests(self) -> list[Request]:
        """Every request of the current turn, for all games (empty when done)."""
        if self.done:
            return []
        if self._pending is None:
            if self._turn < len(self._turns):
                self._pending = self._clue_requests(*self._turns[self._turn])
            else:
                self._pending = self._vote_requests()
        return list(self._pending)

    def _clue_requests(self, round_index: int, seat: int) -> list[Request]:
        cfg = self.cfg
        requests = []
        for g, truth in enumerate(self.truths):
            role = role_of(seat, self.spy_seats[g])
            clues = tuple(self._clues[g])
            text = self._prompts.clue_text(
                truth.domain,
                seat,
                role,
                round_index,
                clues,
                self._notes[g][seat],
                self._prompts.edited_note(truth, role),
            )
            requests.append(
                Request(
                    request_id=f"g{g}/r{round_index}/s{seat}",
                    game_index=g,
                    seat=seat,
                    role=role,
                    stage="clue",
                    round=round_index,
                    image=image_for(role, cfg.spy_image),
                    messages=prompts.messages(self._prompts.system, text),
                    clues=clues,
                )
            )
        return requests

    def _vote_requests(self) -> list[Request]:
        cfg = self.cfg
        requests = []
        for g, truth in enumerate(self.truths):
            clues = tuple(self._clues[g])
            observer_text = None  # identical for all num_votes observer samples of a game
            for k, seat in enumerate(voter_seats(cfg, self.spy_seats[g])):
                role = role_of(seat, self.spy_seats[g])
                if seat == OBSERVER_SEAT:
                    if observer_text is None:
                        observer_text = self._prompts.vote_text(truth.domain, seat, role, clues, ())
                    text, request_id = observer_text, f"g{g}/vote/o{k}"
                else:
                    notes = self._notes[g][seat]
                    text = self._prompts.vote_text(truth.domain, seat, role, clues, notes)
                    request_id = f"g{g}/vote/s{seat}"
                requests.append(
                    Request(
                        request_id=request_id,
                        game_index=g,
                        seat=seat,
                        role=role,
                        stage="decision",
                        round=-1,
                        image=image_for(role, cfg.spy_image),
                        messages=prompts.messages(self._prompts.system, text),
                        clues=clues,
                    )
                )
        return requests

    def submit(self, completions: Mapping[str, str]) -> None:
        """Completions of every pending request, keyed by request_id. Raises ValueError on a
        missing, unknown or non-string completion (nothing is applied then)."""
        if self.done:
            raise ValueError("all games are over; submit() after done is an error")
        pending = self.pending_requests()
        missing = [r.request_id for r in pending if r.request_id not in completions]
        if missing:
            raise ValueError(
                f"submit() lacks {len(missing)} of {len(pending)} pending requests, e.g. "
                f"{missing[:3]}; pass a completion for every request of pending_requests()"
            )
        if len(completions) != len(pending):
            known = {r.request_id for r in pending}
            unknown = [k for k in completions if k not in known]
            raise ValueError(
                f"submit() got {len(unknown)} unknown request ids, e.g. {unknown[:3]}; "
                "submit exactly the ids of pending_requests()"
            )
        bad = [k for k, v in completions.items() if not isinstance(v, str)]
        if bad:
            raise ValueError(f"completions must be str; {bad[:3]} are not")
        if self.stage == "clue":
            self._apply_clues(pending, completions)
        else:
            self._apply_votes(pending, completions)
        self._turn += 1
        self._pending = None
        if self.done:
            self._outcomes = [self._score(g) for g in range(self.num_games)]

    def _apply_clues(self, pending: list[Request], completions: Mapping[str, str]) -> None:
        fmt = self._prompts.clue_format
        for req in pending:
            text = completions[req.request_id]
            clue, parsed = parse_clue(
                text, fmt, answer_parser=self.cfg.answer_parser, format_flag=self.cfg.format_flag
            )
            g, seat = req.game_index, req.seat
            self._clue_records[g].append(
                _ClueRecord(
                    req.request_id, req.round, seat, text, clue, parsed.reasoning, parsed.format_ok
                )
            )
            self._clues[g].append(
                Clue(req.round, seat, CLUE_PLACEHOLDER if clue is None else clue, clue is not None)
            )
            self._notes[g][seat].append(parsed.reasoning)

    def _apply_votes(self, pending: list[Request], completions: Mapping[str, str]) -> None:
        cfg = self.cfg
        for req in pending:
            text = completions[req.request_id]
            vote, parsed = parse_vote(
                text,
                cfg.num_players,
                cfg.allow_na,
                cfg.answer_format,
                answer_parser=cfg.answer_parser,
                format_flag=cfg.format_flag,
            )
            self._vote_records[req.game_index].append(
                _VoteRecord(req.request_id, req.seat, req.role, text, vote, parsed.format_ok)
            )

    def _score(self, g: int) -> _Outcome:
        spies = self.spy_seats[g]
        votes = [rec.vote for rec in self._vote_records[g]]
        received = count_votes(votes, self.cfg.num_players)
        preset = self.grpo.decision_reward
        return _Outcome(
            votes_received=received,
            clue_rewards=clue_rewards(received, spies, self.grpo.beta, self.grpo.lam),
            vote_rewards=[
                decision_reward(rec.vote, spies, preset, format_ok=rec.format_ok)
                for rec in self._vote_records[g]
            ],
            credit=decision_credit(received, spies),
        )

    # ------------------------------------------------------------------ results
    def _require_done(self, what: str) -> list[_Outcome]:
        if self._outcomes is None:
            raise ValueError(
                f"{what} needs finished games; the batch is at turn {self._turn} of "
                f"{self.num_turns}: keep calling pending_requests()/submit() until done"
            )
        return self._outcomes

    def training_samples(self) -> list[TrainingSample]:
        """One sample per request issued: all clue turns, then all votes, game by game."""
        outcomes = self._require_done("training_samples()")
        samples = []
        for g, outcome in enumerate(outcomes):
            spies = self.spy_seats[g]
            for rec in self._clue_records[g]:
                role = role_of(rec.seat, spies)
                samples.append(
                    TrainingSample(
                        rec.request_id,
                        g,
                        rec.seat,
                        role,
                        "clue",
                        rec.round,
                        outcome.clue_rewards[rec.seat],
                        f"clue/{role}",
                        rec.clue is not None,
                    )
                )
            for rec, reward in zip(self._vote_records[g], outcome.vote_rewards):
                samples.append(
                    TrainingSample(
                        rec.request_id,
                        g,
                        rec.seat,
                        rec.role,
                        "decision",
                        -1,
                        reward,
                        f"decision/g{g}",
                        rec.vote is not None,
                    )
                )
        return samples

    def counts(self) -> dict[str, float]:
        """Raw sums behind metrics(), keyed `count/<name>` (see COUNT_KEYS). Sum them over
        batches or ranks, then call metrics_from_counts for exact pooled rates."""
        outcomes = self._require_done("counts()")
        c = dict.fromkeys(COUNT_KEYS, 0.0)
        for g, out in enumerate(outcomes):
            spies = self.spy_seats[g]
            c["games"] += 1
            c["decision_credit"] += out.credit
            for rec, reward in zip(self._vote_records[g], out.vote_rewards):
                c["votes"] += 1
                c["votes_spy"] += isinstance(rec.vote, int) and rec.vote in spies
                c["votes_na"] += rec.vote == NA
                c["votes_invalid"] += rec.vote is None
                c["votes_format_ok"] += rec.format_ok
                c["decision_reward"] += reward
            for rec in self._clue_records[g]:
                c["clue_turns"] += 1
                c["clue_parse_failures"] += rec.clue is None
                c["clue_format_ok"] += rec.format_ok
            for seat in range(self.cfg.num_players):
                key = "spy" if seat in spies else "civilian"
                c[f"{key}_seats"] += 1
                c[f"clue_reward_{key}"] += out.clue_rewards[seat]
                c[f"votes_received_{key}"] += out.votes_received[seat]
        return {f"count/{k}": float(v) for k, v in c.items()}

    def metrics(self) -> dict[str, float]:
        """metrics_from_counts(self.counts()): rates with stated denominators + raw counts."""
        return metrics_from_counts(self.counts())

    def transcript(self, game_index: int) -> dict[str, Any]:
        """Readable history of one game (players 1-based, as the models read them); rewards
        and outcome appear once the batch is done."""
        if not 0 <= game_index < self.num_games:
            raise ValueError(f"game_index={game_index} out of range [0, {self.num_games})")
        g = game_index
        spies = self.spy_seats[g]
        outcome = self._outcomes[g] if self._outcomes is not None else None
        truth = self.truths[g]
        return {
            "game_index": g,
            "domain": truth.domain,
            "truth_seed": truth.seed,
            "spy_players": [s + 1 for s in spies],
            "players": [
                {
                    "player": s + 1,
                    "role": role_of(s, spies),
                    "image": image_for(role_of(s, spies), self.cfg.spy_image),
                }
                for s in range(self.cfg.num_players)
            ],
            "clues": [
                {
                    "round": r.round + 1,
                    "player": r.seat + 1,
                    "role": role_of(r.seat, spies),
                    "completion": r.completion,
                    "clue": r.clue,
                    "reasoning": r.reasoning,
                    "format_ok": r.format_ok,
                    "reward": None if outcome is None else outcome.clue_rewards[r.seat],
                }
                for r in self._clue_records[g]
            ],
            "votes": [
                {
                    "voter": "observer" if r.seat == OBSERVER_SEAT else r.seat + 1,
                    "role": r.role,
                    "completion": r.completion,
                    "vote": r.vote + 1 if isinstance(r.vote, int) else r.vote,
                    "format_ok": r.format_ok,
                    "reward": None if outcome is None else outcome.vote_rewards[i],
                }
                for i, r in enumerate(self._vote_records[g])
            ],
            "outcome": None
            if outcome is None
            else {
                "votes_received": outcome.votes_received,
                "decision_credit": outcome.credit,
                "clue_rewards": outcome.clue_rewards,
            },
        }
