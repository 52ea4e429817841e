"""The evaluation suite: held-out games and retention probes, one record per game / item.

    python -m vzero_nemo.eval run --weights runs/tiny_cpu/pretrained --out runs/tiny_cpu/eval/before \\
        data.path=runs/tiny_cpu/data eval.games=512
    python -m vzero_nemo.eval compare --before DIR --after DIR      # paired changes

`run` plays `eval.games` games on the `val` split, drawn evenly from every domain the split
holds (a domain with fewer held-out pairs than its share replays its pairs with new spy seats
and sampling seeds), and probes the pre-training skills (describe, exists, check, wrong) on
`eval.retention_items` held-out pairs. Everything is seeded by `eval.seed`, so two runs with
the same data and config play the SAME games (pairs, spy seats): a before/after comparison is
paired. Output folder:

    summary.json    rates with 95 % Wilson intervals: overall, per domain, per role; skills
    games.jsonl     one record per game (the counts behind every rate; `unit` = pair key)
    retention.json  per skill, one (correct, total) per probed pair
    samples.json    the first `eval.sample_games` transcripts + their pairs' change boxes
    images/         those pairs' original and modified images (PNG)

`compare` pairs two such folders game by game and reports each change with a paired
bootstrap interval over pairs (see `vzero_nemo.eval.stats`).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzero_nemo.config import VZeroConfig
from vzero_nemo.data.manifest import load_manifest
from vzero_nemo.data.schema import Truth
from vzero_nemo.eval.stats import mean_row, paired_bootstrap, rate_row
from vzero_nemo.game.policies import contradicts_original

if TYPE_CHECKING:  # the model stack is imported only to play (reports stay light)
    from vzero_nemo.training.rollout import GamePair

ROLES = ("spy", "civilian")
CHUNK_GAMES = 128
"""Games played per `play_games` call (game j of the suite is in chunk j // CHUNK_GAMES)."""

# name -> (numerator, denominator) over game records: the rates of the summary.
GAME_RATES: dict[str, tuple[str, str]] = {
    "decision_accuracy": ("decision_credit", "one"),
    "vote_accuracy": ("votes_spy", "votes"),
    "na_rate": ("votes_na", "votes"),
    "invalid_vote_rate": ("votes_invalid", "votes"),
}
ROLE_RATES: dict[str, tuple[str, str]] = {
    "clue_format_ok_rate": ("format_ok", "clues"),
    "clue_grounded_rate": ("grounded", "checked"),
    "clue_contradicts_original_rate": ("contradicts", "clues"),
    "votes_received_rate": ("votes_received", "seat_votes"),
}


ROLE_MEANS: dict[str, tuple[str, str]] = {"clue_reward": ("reward", "seats")}
"""Per-role means (not rates): changes by the same paired bootstrap of a ratio of sums."""
ROLE_COUNTS = (
    "clues", "format_ok", "checked", "grounded", "contradicts",
    "seats", "reward", "votes_received", "seat_votes",
)  # fmt: skip
"""Per-role counts of a game record: clue turns, well-formed ones, clevr clues checked for
grounding, grounded ones, ones contradicting the original; seats, summed clue reward, valid
votes received and valid votes cast (x seats: the denominator of votes received)."""


@dataclass(frozen=True, slots=True)
class HeldOutGame:
    pair: GamePair
    unit: str
    """The resampled unit of the bootstrap: the pair key (replays share it)."""
    group: str
    """Per-domain row: the domain, with the photo source for `real` pairs."""


def pair_group(truth: Truth) -> str:
    """The per-domain row of a pair: `clevr`, `chart/<type>`, `real/<source>`."""
    if truth.domain == "chart":
        return f"chart/{truth.original.get('type', 'unknown')}"
    if truth.domain == "real":
        return f"real/{truth.original.get('source', 'unknown')}"
    return truth.domain


def _grounded(clue: str, scene: dict[str, Any]) -> bool:
    words = clue.lower().split()
    return any(o["color"] in words and o["shape"] in words for o in scene["objects"])


def select_games(data_path: str, games: int, seed: int) -> list[HeldOutGame]:
    """`games` held-out games spread evenly over the domains of the val split (manifest
    order), each domain's pairs in file order, replayed round-robin when it has too few."""
    from vzero_nemo.data.reader import PairReader
    from vzero_nemo.training.rollout import GamePair

    if games < 1:
        raise ValueError(f"eval.games={games} must be >= 1")
    val = load_manifest(data_path).split_shards("val")
    if not val:
        raise ValueError(f"{data_path!r} has no val split; generate it with --val-fraction")
    available: dict[str, int] = defaultdict(int)
    for shard in val:
        available[shard.domain] += shard.num_samples
    domains = sorted(available)
    share = {d: games // len(domains) + (i < games % len(domains)) for i, d in enumerate(domains)}
    need = {d: min(share[d], available[d]) for d in domains}
    pairs: dict[str, list[GamePair]] = {d: [] for d in domains}
    reader = PairReader(data_path, split="val", seed=seed, shuffle=False)
    for p in reader:
        bucket = pairs[p.truth.domain]
        if len(bucket) < need[p.truth.domain]:
            bucket.append(GamePair(p.key, p.original, p.modified, p.truth))
        if all(len(pairs[d]) >= need[d] for d in domains):
            break
    out = []
    for d in domains:
        if not pairs[d]:
            raise ValueError(f"the val split of {data_path!r} yielded no readable {d} pairs")
        for i in range(share[d]):
            pair = pairs[d][i % len(pairs[d])]
            out.append(HeldOutGame(pair, pair.key, pair_group(pair.truth)))
    return out


def game_record(transcript: dict[str, Any], game: HeldOutGame) -> dict[str, Any]:
    """The counts of one finished game behind every rate of the summary."""
    truth = game.pair.truth
    spies = set(transcript["spy_players"])
    votes = [v["vote"] for v in transcript["votes"]]
    valid = [v for v in votes if isinstance(v, int)]
    received = transcript["outcome"]["votes_received"]
    roles = {r: dict.fromkeys(ROLE_COUNTS, 0.0) for r in ROLES}
    for clue in transcript["clues"]:
        c = roles[clue["role"]]
        c["clues"] += 1
        c["format_ok"] += bool(clue["format_ok"])
        text = clue["clue"]
        c["contradicts"] += text is not None and contradicts_original(text, truth)
        if truth.domain == "clevr":
            own = truth.modified if clue["role"] == "spy" else truth.original
            c["checked"] += 1
            c["grounded"] += text is not None and _grounded(text, own)
    rewards = transcript["outcome"]["clue_rewards"]
    for seat, role in enumerate(p["role"] for p in transcript["players"]):
        c = roles[role]
        c["seats"] += 1
        c["reward"] += rewards[seat]
        c["votes_received"] += received[seat]
        c["seat_votes"] += len(valid)
    return {
        "unit": game.unit,
        "group": game.group,
        "domain": truth.domain,
        "spy_players": sorted(spies),
        "one": 1,
        "decision_credit": transcript["outcome"]["decision_credit"],
        "votes": len(votes),
        "votes_spy": sum(v in spies for v in valid),
        "votes_na": sum(v == "N/A" for v in votes),
        "votes_invalid": sum(v is None for v in votes),
        "roles": roles,
    }


def play_suite(
    model, tokenizer, cfg: VZeroConfig, games: Sequence[HeldOutGame], log: Callable = print
) -> tuple[list[dict], list[dict]]:
    """Play `games` in chunks of CHUNK_GAMES (chunk k seeded `eval.seed + k`): game records
    and the transcripts of the first `eval.sample_games` games."""
    import torch

    from vzero_nemo.training.rollout import play_games

    records: list[dict] = []
    samples: list[dict] = []
    start = time.perf_counter()
    for k, first in enumerate(range(0, len(games), CHUNK_GAMES)):
        chunk = games[first : first + CHUNK_GAMES]
        seed = cfg.eval.seed + k
        rollout = play_games(
            model,
            [g.pair for g in chunk],
            cfg,
            tokenizer,
            seed=seed,
            generator=torch.Generator().manual_seed(seed),
        )
        for i, game in enumerate(chunk):
            transcript = rollout.env.transcript(i)
            records.append(game_record(transcript, game))
            if len(samples) < cfg.eval.sample_games:
                samples.append({**transcript, "game_index": first + i, "pair_key": game.unit})
        log(f"[eval] games {len(records)}/{len(games)} ({time.perf_counter() - start:.0f} s)")
    return records, samples


def _sum(records: Sequence[dict], key: str, role: str | None = None) -> list[float]:
    if role is None:
        return [float(r[key]) for r in records]
    return [float(r["roles"][role][key]) for r in records]


def summarize(records: Sequence[dict]) -> dict[str, Any]:
    """Rates with Wilson intervals over `records`: overall, per group, per role."""

    def game_rows(rs: Sequence[dict]) -> dict[str, Any]:
        rows = {name: rate_row(_sum(rs, n), _sum(rs, d)) for name, (n, d) in GAME_RATES.items()}
        rows["games"] = len(rs)
        return rows

    roles = {}
    for role in ROLES:
        rows = {
            name: rate_row(_sum(records, n, role), _sum(records, d, role))
            for name, (n, d) in ROLE_RATES.items()
        }
        seats = _sum(records, "seats", role)
        rewards = [r / s for r, s in zip(_sum(records, "reward", role), seats) if s]
        rows["clue_reward"] = mean_row(rewards)
        roles[role] = rows
    groups = sorted({r["group"] for r in records})
    return {
        "overall": game_rows(records),
        "groups": {g: game_rows([r for r in records if r["group"] == g]) for g in groups},
        "roles": roles,
        "units": len({r["unit"] for r in records}),
    }


def summarize_skills(scores: dict[str, list[list[int]]]) -> dict[str, Any]:
    """Per skill: accuracy with its Wilson interval over the probed items."""
    return {
        name: {**rate_row([c for c, _ in items], [t for _, t in items]), "items": len(items)}
        for name, items in scores.items()
    }


def _paired(before: Sequence[dict], after: Sequence[dict], num: str, den: str, role=None):
    units = [r["unit"] for r in before]
    return paired_bootstrap(
        (_sum(before, num, role), _sum(before, den, role)),
        (_sum(after, num, role), _sum(after, den, role)),
        units,
    )


def compare(before_dir: str | Path, after_dir: str | Path) -> dict[str, Any]:
    """Paired changes after - before, game by game (and probe by probe) on the same items."""
    before, after = load_result(before_dir), load_result(after_dir)
    b_games, a_games = before["games"], after["games"]
    if [r["unit"] for r in b_games] != [r["unit"] for r in a_games]:
        raise ValueError(
            f"{before_dir} and {after_dir} did not play the same games (pair keys differ); "
            "evaluate both with the same data.path, eval.games and eval.seed"
        )
    groups = sorted({r["group"] for r in b_games})
    out: dict[str, Any] = {
        "overall": {k: _paired(b_games, a_games, n, d) for k, (n, d) in GAME_RATES.items()},
        "groups": {},
        "roles": {},
        "skills": {},
        "games": len(b_games),
    }
    for g in groups:
        idx = [i for i, r in enumerate(b_games) if r["group"] == g]
        bs, as_ = [b_games[i] for i in idx], [a_games[i] for i in idx]
        out["groups"][g] = {k: _paired(bs, as_, n, d) for k, (n, d) in GAME_RATES.items()}
    for role in ROLES:
        out["roles"][role] = {
            k: _paired(b_games, a_games, n, d, role)
            for k, (n, d) in {**ROLE_RATES, **ROLE_MEANS}.items()
        }
    b_skills, a_skills = before["retention"], after["retention"]
    for name in sorted(set(b_skills) & set(a_skills)):
        b, a = b_skills[name], a_skills[name]
        if len(b) != len(a):
            raise ValueError(f"skill {name}: {len(b)} items before, {len(a)} after")
        out["skills"][name] = paired_bootstrap(
            ([c for c, _ in b], [t for _, t in b]), ([c for c, _ in a], [t for _, t in a])
        )
    return out


def load_result(directory: str | Path) -> dict[str, Any]:
    """summary.json, games.jsonl and retention.json of a `run` folder."""
    d = Path(directory)
    if not (d / "summary.json").exists():
        raise ValueError(
            f"{d} holds no evaluation (summary.json); run `python -m vzero_nemo.eval run`"
        )
    lines = (d / "games.jsonl").read_text().splitlines()
    retention = d / "retention.json"
    return {
        "summary": json.loads((d / "summary.json").read_text()),
        "games": [json.loads(x) for x in lines if x],
        "retention": json.loads(retention.read_text()) if retention.exists() else {},
    }


def is_significant_drop(change: dict[str, float]) -> bool:
    """A change whose whole 95 % interval lies below zero."""
    return math.isfinite(change.get("hi", math.nan)) and change["hi"] < 0
