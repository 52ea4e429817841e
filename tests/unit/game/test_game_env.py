"""GameBatch: turn structure, what each seat sees, submit contract, samples, metrics."""

import dataclasses
import subprocess
import sys
from collections import Counter

import pytest

from vzero_nemo.config import GameConfig, GRPOConfig, VZeroConfig
from vzero_nemo.game.env import GameBatch, metrics_from_counts
from vzero_nemo.game.roles import draw_spy_seats
from vzero_nemo.game.synthetic import random_truths

pytestmark = pytest.mark.unit


def make_env(num_games=3, seed=7, grpo=None, **game):
    cfg = dataclasses.replace(GameConfig(), **game)
    return GameBatch(random_truths("clevr", num_games, seed=1), cfg, seed, grpo=grpo)


def user_text(request):
    (image,) = [c for c in request.messages[-1]["content"] if c["type"] == "image"]
    assert image == {"type": "image"}
    return "".join(c["text"] for c in request.messages[-1]["content"] if c["type"] == "text")


def marked_completion(request):
    """Completion whose reasoning and clue name the request, to trace what others see."""
    tag = request.request_id.replace("/", "-")
    return f"<think>SECRET-{tag}</think><answer>clue-{tag}</answer>"


def finish(env, vote_text):
    """Play clue turns with marked completions, then every vote with vote_text(request)."""
    while env.stage == "clue":
        env.submit({r.request_id: marked_completion(r) for r in env.pending_requests()})
    env.submit({r.request_id: vote_text(r) for r in env.pending_requests()})
    assert env.done


def test_turn_structure_observer_mode():
    env = make_env(num_games=3)
    assert env.num_turns == 2 * 4 + 1
    seen_ids = set()
    for turn in range(8):
        requests = env.pending_requests()
        assert len(requests) == 3
        assert {r.seat for r in requests} == {turn % 4}
        assert {r.round for r in requests} == {turn // 4}
        assert [r.game_index for r in requests] == [0, 1, 2]
        for r in requests:
            expected = "modified" if r.seat in env.spy_seats[r.game_index] else "original"
            assert r.image == expected and r.stage == "clue"
            assert r.role == ("spy" if expected == "modified" else "civilian")
        seen_ids.update(r.request_id for r in requests)
        env.submit({r.request_id: marked_completion(r) for r in requests})
    votes = env.pending_requests()
    assert len(votes) == 3 * 8
    assert all(r.seat == -1 and r.role == "observer" and r.image == "original" for r in votes)
    assert all(r.stage == "decision" for r in votes)
    seen_ids.update(r.request_id for r in votes)
    assert len(seen_ids) == 3 * 8 + 3 * 8  # ids are unique across the batch
    env.submit({r.request_id: "<answer>1</answer>" for r in votes})
    assert env.done and env.pending_requests() == []


def test_civilians_vote_mode_and_blank_spy_image():
    env = make_env(num_games=4, vote_mode="civilians", spy_image="blank")
    while env.stage == "clue":
        requests = env.pending_requests()
        for r in requests:
            assert r.image == ("blank" if r.role == "spy" else "original")
        env.submit({r.request_id: marked_completion(r) for r in requests})
    votes = env.pending_requests()
    assert len(votes) == 4 * 3
    for g in range(4):
        voters = [r.seat for r in votes if r.game_index == g]
        assert voters == [s for s in range(4) if s not in env.spy_seats[g]]
    assert all(r.role == "civilian" for r in votes)


def test_each_seat_sees_clues_and_only_its_own_reasoning():
    env = make_env(num_games=2)
    while not env.done:
        requests = env.pending_requests()
        for r in requests:
            text = user_text(r)
            g = r.game_index
            earlier = [c for c in r.clues]
            for clue in earlier:
                tag = f"g{g}-r{clue.round}-s{clue.seat}"
                assert f"clue-{tag}" in text  # every earlier clue, as answer text
                secret = f"SECRET-{tag}"
                if clue.seat == r.seat:
                    assert secret in text  # its own earlier reasoning
                else:
                    assert secret not in text  # never someone else's
            assert "SECRET-g" not in text.replace(f"SECRET-g{g}-", "")  # nothing of other games
            if r.stage == "clue":
                assert len(earlier) == r.round * 4 + r.seat
        if env.stage == "clue":
            env.submit({r.request_id: marked_completion(r) for r in requests})
        else:
            assert all(len(r.clues) == 8 for r in requests)
            env.submit({r.request_id: "<answer>N/A</answer>" for r in requests})


def test_submit_contract_errors():
    env = make_env(num_games=2)
    requests = env.pending_requests()
    with pytest.raises(ValueError, match="lacks 1 of 2"):
        env.submit({requests[0].request_id: "x"})
    full = {r.request_id: "x" for r in requests}
    with pytest.raises(ValueError, match="unknown request ids"):
        env.submit({**full, "g9/r0/s0": "x"})
    with pytest.raises(ValueError, match="must be str"):
        env.submit({**full, requests[0].request_id: None})
    with pytest.raises(ValueError, match="needs finished games"):
        env.training_samples()
    assert env.turn == 0  # nothing applied by a rejected submit
    finish(env, lambda r: "<answer>1</answer>")
    with pytest.raises(ValueError, match="over"):
        env.submit({})


def test_spy_seats_are_seeded_and_uniform():
    assert draw_spy_seats(50, 4, 1, seed=3) == draw_spy_seats(50, 4, 1, seed=3)
    assert draw_spy_seats(50, 4, 1, seed=3) != draw_spy_seats(50, 4, 1, seed=4)
    counts = Counter(s for (s,) in draw_spy_seats(8000, 4, 1, seed=0))
    assert all(abs(counts[s] / 8000 - 0.25) < 0.02 for s in range(4))
    two = draw_spy_seats(100, 6, 2, seed=0)
    assert all(len(set(s)) == 2 and list(s) == sorted(s) for s in two)
    assert make_env(seed=5).spy_seats == draw_spy_seats(3, 4, 1, seed=5)


def test_rewards_samples_and_metrics_by_hand():
    env = make_env(num_games=2, seed=11)
    spy0, spy1 = env.spy_seats[0][0], env.spy_seats[1][0]
    civ1 = next(s for s in range(4) if s != spy1)
    # game 0: all 8 observer votes name the spy.
    # game 1: 4 x N/A, 2 invalid, 1 for the spy, 1 for a civilian -> tie -> credit 1/2.
    game1 = ["N/A"] * 4 + ["junk", "<answer>7</answer>"] + [str(spy1 + 1), str(civ1 + 1)]

    def vote(r):
        if r.game_index == 0:
            return f"<think>t</think><answer>{spy0 + 1}</answer>"
        k = int(r.request_id.rsplit("o", 1)[1])
        return game1[k] if game1[k].startswith(("junk", "<")) else f"<answer>{game1[k]}</answer>"

    finish(env, vote)
    samples = env.training_samples()
    assert len(samples) == 2 * 8 + 2 * 8
    by_id = {s.request_id: s for s in samples}
    # Eq. 1, game 0: v_s = 8, civilians 0 -> spy -0.8, civilians 0.1/3 * 8 = 0.2667.
    for seat in range(4):
        for rnd in range(2):
            s = by_id[f"g0/r{rnd}/s{seat}"]
            assert s.stage == "clue" and s.parse_ok
            if seat == spy0:
                assert s.role == "spy" and s.group_id == "clue/spy"
                assert s.reward == pytest.approx(-0.8)
            else:
                assert s.role == "civilian" and s.group_id == "clue/civilian"
                assert s.reward == pytest.approx(0.8 / 3)
    # Eq. 1, game 1: v_s = 1, civ1 got 1, others 0 -> v̄_c = 1/3, spy excess 2/3.
    assert by_id[f"g1/r0/s{spy1}"].reward == pytest.approx(-0.1 * 2 / 3)
    assert by_id[f"g1/r1/s{civ1}"].reward == pytest.approx(0.1 / 3 * 2 / 3 - 0.1 * 2 / 3)
    # Eq. 4 per vote, group per game.
    assert [by_id[f"g0/vote/o{k}"].reward for k in range(8)] == [1.0] * 8
    assert [by_id[f"g1/vote/o{k}"].reward for k in range(8)] == [-0.5] * 4 + [-1, -1, 1, -1]
    assert [by_id[f"g1/vote/o{k}"].parse_ok for k in range(8)] == [True] * 4 + [False] * 2 + [
        True
    ] * 2
    assert {s.group_id for s in samples if s.stage == "decision"} == {"decision/g0", "decision/g1"}

    m = env.metrics()
    assert m["decision_accuracy"] == pytest.approx((1 + 0.5) / 2)
    assert m["vote_accuracy"] == pytest.approx(9 / 16)
    assert m["na_rate"] == pytest.approx(4 / 16)
    assert m["invalid_vote_rate"] == pytest.approx(2 / 16)
    assert m["vote_format_ok_rate"] == pytest.approx(8 / 16)
    assert m["clue_parse_failures"] == 0 and m["clue_format_ok_rate"] == 1.0
    # 8 x (+1) + 4 x (-0.5) + 2 invalid x (-1) + 1 spy vote (+1) + 1 civilian vote (-1)
    assert m["reward/decision"] == pytest.approx((8 - 2 - 2 + 1 - 1) / 16)
    assert m["reward/clue_spy"] == pytest.approx((-0.8 - 0.2 / 3) / 2)
    assert m["reward/clue_spy"] * 2 + m["reward/clue_civilian"] * 6 == pytest.approx(0)  # zero-sum
    assert m["votes_received/spy"] == pytest.approx((8 + 1) / 2)
    assert m["votes_received/civilian"] == pytest.approx(1 / 6)
    assert m["count/games"] == 2 and m["count/votes"] == 16 and m["count/clue_turns"] == 16

    t = env.transcript(1)
    assert t["spy_players"] == [spy1 + 1]
    assert [v["vote"] for v in t["votes"]] == ["N/A"] * 4 + [None, None, spy1 + 1, civ1 + 1]
    assert t["outcome"]["decision_credit"] == 0.5
    assert len(t["clues"]) == 8 and t["clues"][0]["clue"] == "clue-g1-r0-s0"
    assert t["clues"][0]["reasoning"] == "SECRET-g1-r0-s0"


def test_unparseable_clue_becomes_placeholder_and_is_counted():
    env = make_env(num_games=1)
    env.submit({"g0/r0/s0": "I refuse to answer properly"})
    (nxt,) = env.pending_requests()
    assert "Player 1: (no clue)" in user_text(nxt)
    assert nxt.clues[0].parse_ok is False
    while env.stage == "clue":
        env.submit({r.request_id: "<answer>ok</answer>" for r in env.pending_requests()})
    env.submit({r.request_id: "<answer>2</answer>" for r in env.pending_requests()})
    assert env.metrics()["clue_parse_failures"] == 1
    assert env.metrics()["clue_parse_failure_rate"] == pytest.approx(1 / 8)
    assert env.training_samples()[0].parse_ok is False


def test_official_code_preset_reaches_the_rewards():
    cfg = VZeroConfig().apply_overrides(["preset=official_code"])
    env = make_env(num_games=1, grpo=cfg.grpo)
    spy = env.spy_seats[0][0]
    finish(env, lambda r: f"<think>t</think><answer>{spy + 1}</answer>")
    rewards = [s.reward for s in env.training_samples() if s.stage == "decision"]
    assert rewards == pytest.approx([0.3 + 1.2 + 0.99] * 8)


def test_civilians_mode_rewards_and_groups():
    env = make_env(num_games=2, vote_mode="civilians", grpo=GRPOConfig(beta=0.2, lam=0.0))
    finish(env, lambda r: "<answer>N/A</answer>")
    samples = env.training_samples()
    votes = [s for s in samples if s.stage == "decision"]
    assert len(votes) == 2 * 3 and all(s.reward == -0.5 for s in votes)
    assert all(s.reward == 0.0 for s in samples if s.stage == "clue")  # no votes, no signal
    assert {s.group_id for s in votes} == {"decision/g0", "decision/g1"}
    assert env.metrics()["decision_accuracy"] == 0.0 and env.metrics()["na_rate"] == 1.0


def test_bad_configs_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="num_players"):
        make_env(num_players=2)
    with pytest.raises(ValueError, match="fewer than civilians"):
        make_env(num_players=4, num_spies=2)
    with pytest.raises(ValueError, match="at least one Truth"):
        GameBatch([], GameConfig(), 0)
    with pytest.raises(ValueError, match="not a Truth"):
        GameBatch([{"domain": "clevr"}], GameConfig(), 0)
    with pytest.raises(ValueError, match="game_index"):
        make_env().transcript(5)


def test_game_package_imports_no_torch():
    code = (
        "import sys\n"
        "import vzero_nemo.game.env, vzero_nemo.game.policies, vzero_nemo.game.simulate\n"
        "import vzero_nemo.game.bench, vzero_nemo.game.prompts, vzero_nemo.game.rewards\n"
        "import vzero_nemo.game.parsing, vzero_nemo.game.roles, vzero_nemo.game.synthetic\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_counts_pool_exactly_over_batches():
    envs = [make_env(num_games=2, seed=1), make_env(num_games=3, seed=2)]
    for k, env in enumerate(envs):
        finish(env, lambda r, k=k: f"<answer>{(r.game_index + k) % 4 + 1}</answer>")
    a, b = (env.metrics() for env in envs)
    pooled = metrics_from_counts({key: a[key] + b[key] for key in a if key.startswith("count/")})
    credit = a["decision_accuracy"] * 2 + b["decision_accuracy"] * 3
    assert pooled["decision_accuracy"] == pytest.approx(credit / 5)
    assert pooled["reward/clue_spy"] == pytest.approx(
        (a["reward/clue_spy"] * 2 + b["reward/clue_spy"] * 3) / 5
    )
    assert pooled["count/votes"] == 5 * 8
    with pytest.raises(ValueError, match="counts lack"):
        metrics_from_counts({"count/games": 1.0})


@pytest.mark.parametrize(
    "style, clue, ok",
    [
        ("compact", "<answer>red cube</answer>", 1.0),  # asked: the answer tag alone
        ("compact", "<think>t</think><answer>red cube</answer>", 0.0),
        ("full", "<answer>red cube</answer>", 0.0),  # asked: think, then answer
        ("full", "<think>t</think><answer>red cube</answer>", 1.0),
    ],
)
def test_clue_format_follows_what_the_prompt_asked(style, clue, ok):
    env = make_env(num_games=1, prompt_style=style, num_clue_rounds=1)
    while env.stage == "clue":
        env.submit({r.request_id: clue for r in env.pending_requests()})
    env.submit({r.request_id: "<think>t</think><answer>2</answer>" for r in env.pending_requests()})
    assert env.metrics()["clue_format_ok_rate"] == ok
    assert env.metrics()["vote_format_ok_rate"] == 1.0
