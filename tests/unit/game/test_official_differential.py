"""Differential test: `preset=official_code` against a line-cited restatement of the official
reward path (tests/oracles/official_vision_zero.py) on thousands of random games whose
observer votes are messy model texts. Compared per vote / clue sample / iteration: parsed
vote, format flag, decision reward, clue reward, clue (RAE) advantage, decision advantage,
role baselines, stage schedule and the trained sample set. Our side runs the real
GameBatch and the trainer's `assign_advantages` (one process, DP = 1).

Tolerances: decision rewards and votes must be identical; clue rewards agree to 1e-12
(the same formula, another float order); advantages and baselines to 1e-6, because the
official code computes them in float32 (T L2089, T L2423, G L708) and we in float64.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from tests.oracles import official_vision_zero as official
from tests.oracles.harness import make_trainer, play
from vzero_nemo.config import ParallelConfig
from vzero_nemo.game.parsing import parse_vote
from vzero_nemo.training.trainer import Trainer, assign_advantages

pytestmark = pytest.mark.unit
ITERATIONS, GAMES_PER_ITERATION = 250, 8  # 2000 games
COMPONENTS = (
    "vote", "format_flag", "decision_reward", "clue_reward", "clue_advantage",
    "decision_advantage", "baselines", "stage", "trained_set",
)  # fmt: skip


@pytest.fixture(scope="module")
def one_process():
    from vzero_nemo.parallel import destroy_parallel, get_parallel_state, initialize_parallel

    initialize_parallel(ParallelConfig(backend="gloo"), seed=0)
    yield get_parallel_state()
    destroy_parallel()


def official_vote_as_ours(info, num_players: int):
    """An official vote as our transcript writes it: 1-based player, "N/A" or None (an
    official int outside 1..num_players is scored and counted exactly like an invalid vote,
    G L1600 / L2403-2409)."""
    voted = info["voted_spy"] if info else None
    if voted == "N/A" or (isinstance(voted, int) and 1 <= voted <= num_players):
        return voted
    return None


def compare_game(env, rollout, completions, g, out, bad: Counter) -> int:
    """Count mismatches of game g against the oracle's output; returns the votes compared."""
    t = env.transcript(g)
    n, rounds = env.cfg.num_players, env.cfg.num_clue_rounds
    for k, vote in enumerate(t["votes"]):
        bad["vote"] += vote["vote"] != official_vote_as_ours(out["votes"][k], n)
        bad["format_flag"] += vote["format_ok"] != out["format_ok"][k]
        bad["decision_reward"] += vote["reward"] != out["decision_rewards"][k]
        ours = rollout.sequences[f"g{g}/vote/o{k}"].advantage
        bad["decision_advantage"] += abs(ours - out["decision_advantages"][k]) > 1e-6
    for seat in range(n):
        bad["clue_reward"] += (
            abs(t["outcome"]["clue_rewards"][seat] - out["clue_raw"][seat]) > 1e-12
        )
        for r in range(rounds):
            ours = rollout.sequences[f"g{g}/r{r}/s{seat}"].advantage
            bad["clue_advantage"] += abs(ours - out["clue_advantages"][r * n + seat]) > 1e-6
    return len(t["votes"])


def run_differential(tr: Trainer, iterations: int, seed: int) -> tuple[Counter, int, int, int]:
    """(mismatches per component, games, votes, votes the strict parser reads otherwise)."""
    oracle, rng = official.OfficialRewardPath(), random.Random(seed)
    bad, games, votes, strict_differs = Counter(), 0, 0, 0
    for it in range(iterations):
        # Vary the table: 3-6 players, 2-8 observer samples (the GRPO group).
        game_cfg = dataclasses.replace(
            tr.cfg.game, num_players=rng.randint(3, 6), num_votes=rng.randint(2, 8)
        )
        tr.cfg.game = game_cfg
        env, rollout, completions = play(tr.cfg, GAMES_PER_ITERATION, seed=1000 + it, rng=rng)
        stage = tr.state.controller.stage
        phase = official.phase_of_step(it, cycle_length=1)  # the official run script's
        bad["stage"] += stage != phase
        trained = assign_advantages(tr, rollout, stage)
        bad["trained_set"] += {s.meta["stage"] for s in trained} != official.trained_phases(phase)
        for g in range(env.num_games):
            texts = [completions[f"g{g}/vote/o{k}"] for k in range(game_cfg.num_votes)]
            spy = env.spy_seats[g][0] + 1
            out = oracle.play_game(spy, game_cfg.num_players, game_cfg.num_clue_rounds, texts)
            votes += compare_game(env, rollout, completions, g, out, bad)
            official_votes = [v["vote"] for v in env.transcript(g)["votes"]]
            strict_votes = [parse_vote(x, game_cfg.num_players)[0] for x in texts]
            strict_differs += sum(
                (s + 1 if isinstance(s, int) else s) != o
                for s, o in zip(strict_votes, official_votes)
            )
            games += 1
        b = tr.state.baselines
        bad["baselines"] += max(abs(b.spy - oracle.b_spy), abs(b.civilian - oracle.b_civ)) > 1e-6
        tr.state.controller.update(0.5, 0.0)
    return bad, games, votes, strict_differs


def test_official_code_preset_matches_the_official_reward_path(one_process):
    tr = make_trainer(one_process, GAMES_PER_ITERATION, "preset=official_code")
    bad, games, votes, strict_differs = run_differential(tr, ITERATIONS, seed=2025)
    counts = ", ".join(f"{c}={bad[c]}" for c in COMPONENTS)
    print(f"\ndifferential: {games} games, {votes} votes, mismatches: {counts}")
    print(f"strict parser (our defaults) reads {strict_differs}/{votes} of these votes otherwise")
    assert games == ITERATIONS * GAMES_PER_ITERATION and votes > 5 * games
    assert all(bad[c] == 0 for c in COMPONENTS), counts
    assert strict_differs > votes // 10  # the texts do tell the two readings apart


@pytest.mark.parametrize(
    "override, component",
    [
        ("game.answer_parser=strict", "vote"),
        ("game.format_flag=strict", "format_flag"),
        ("grpo.decision_reward=paper", "decision_reward"),
        ("grpo.group_std=sample", "decision_advantage"),
        ("grpo.rae_update=iteration", "clue_advantage"),
        ("grpo.rae_alpha=0.95", "baselines"),
        ("spo.cycle_length=2", "stage"),
        ("spo.clue_stage_trains_votes=false", "trained_set"),
    ],
)
def test_each_official_setting_is_needed(one_process, override, component):
    # Setting one field back to our default breaks agreement where it should: the
    # comparison can fail, and each named setting carries one part of the official path.
    tr = make_trainer(one_process, GAMES_PER_ITERATION, "preset=official_code", override)
    bad, *_ = run_differential(tr, 25, seed=7)
    assert bad[component] > 0, dict(bad)


def test_paper_defaults_train_clue_turns_only_and_step_rae_once_per_iteration(one_process):
    tr = make_trainer(one_process, GAMES_PER_ITERATION)
    env, rollout, _ = play(tr.cfg, GAMES_PER_ITERATION, seed=5, rng=random.Random(5))
    trained = assign_advantages(tr, rollout, "clue")
    assert {s.meta["stage"] for s in trained} == {"clue"}
    assert len(trained) == GAMES_PER_ITERATION * 4 * 2  # every clue turn, no vote
    assert tr.state.baselines.num_updates == 1
    trained = assign_advantages(tr, rollout, "decision")
    assert {s.meta["stage"] for s in trained} == {"decision"}


def test_each_official_setting_works_alone(one_process):
    tr = make_trainer(one_process, GAMES_PER_ITERATION, "grpo.rae_update=game")
    _, rollout, _ = play(tr.cfg, GAMES_PER_ITERATION, seed=6, rng=random.Random(6))
    assert {s.meta["stage"] for s in assign_advantages(tr, rollout, "clue")} == {"clue"}
    assert tr.state.baselines.num_updates == GAMES_PER_ITERATION
    tr = make_trainer(one_process, GAMES_PER_ITERATION, "spo.clue_stage_trains_votes=true")
    _, rollout, _ = play(tr.cfg, GAMES_PER_ITERATION, seed=6, rng=random.Random(6))
    trained = assign_advantages(tr, rollout, "clue")
    assert Counter(s.meta["stage"] for s in trained) == {
        "clue": GAMES_PER_ITERATION * 8,
        "decision": GAMES_PER_ITERATION * 8,
    }
    assert tr.state.baselines.num_updates == 1


def test_role_weight_gives_spies_and_civilians_equal_total_weight(one_process):
    # Same games, same baselines: `rae_role_weight=role` scales each role's RAE advantages by
    # N / (2 N_role) (4 players, 1 spy: spy x2, civilians x2/3), nothing else.
    per_role = {}
    for weight in ("sample", "role", "spy_only"):
        tr = make_trainer(one_process, GAMES_PER_ITERATION, f"grpo.rae_role_weight={weight}")
        _, rollout, _ = play(tr.cfg, GAMES_PER_ITERATION, seed=5, rng=random.Random(5))
        trained = assign_advantages(tr, rollout, "clue")
        per_role[weight] = [(s.meta["role"], s.advantage) for s in trained]
    assert [r for r, _ in per_role["sample"]] == [r for r, _ in per_role["role"]]
    scale = {"spy": 2.0, "civilian": 2.0 / 3.0}
    for (role, a), (_, b), (_, c) in zip(
        per_role["sample"], per_role["role"], per_role["spy_only"]
    ):
        assert b == pytest.approx(a * scale["spy" if role == "spy" else "civilian"])
        assert c == pytest.approx(a * 4.0 if role == "spy" else 0.0)
    assert any(a != 0 for _, a in per_role["sample"])
