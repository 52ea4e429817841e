"""The official-code oracle itself, on hand-worked cases (so that the differential test does
not compare two statements that are wrong in the same way)."""

import pytest

from tests.oracles import official_vision_zero as official

pytestmark = pytest.mark.unit


def test_votes_and_format_by_hand():
    assert official.extract_vote("x \\boxed{2 or 3}") == {"voted_spy": 2}
    assert official.extract_vote("\\boxed{n/a}") == {"voted_spy": "N/A"}
    assert official.extract_vote('<answer>{"spy": 12}</answer>') == {"voted_spy": 12}
    assert official.extract_vote("\\boxed{Player 10}") is None
    assert official.format_ok("I compared every clue. \\boxed{3}")
    assert not official.format_ok("Too short \\boxed{3}")


def test_decision_rewards_by_hand():
    good = "Player 3's clue is wrong. \\boxed{3}"
    # 0.3 * (2 * 1 - 1) + 1.2 * 1 + 0.99 * 1 = 2.49
    assert official.decision_reward(good, official.extract_vote(good), 3) == pytest.approx(2.49)
    # Well formatted but wrong: 0.3 - 1.2 = -0.9; N/A: 0.3 - 0.6 = -0.3.
    assert official.decision_reward(good, official.extract_vote(good), 1) == pytest.approx(-0.9)
    na = "I cannot tell who it is. \\boxed{N/A}"
    assert official.decision_reward(na, official.extract_vote(na), 1) == pytest.approx(-0.3)


def test_clue_rewards_and_role_baselines_by_hand():
    # Spy = player 3 of 4; votes 3, 3, 1, 3: v_U = 3, civilians 1, 0, 0 (mean 1/3), psi = 8/3.
    votes = [{"voted_spy": v} for v in (3, 3, 1, 3)]
    raw = official.strategic_clue_rewards(votes, spy_player=3, num_players=4)
    psi = 8 / 3
    expected = [0.1 * psi / 3 - 0.1 * (2 / 3), 0.1 * psi / 3 + 0.1 / 3, -0.1 * psi]
    expected.append(expected[1])
    assert raw == pytest.approx(expected) and sum(raw) == pytest.approx(0)
    path = official.OfficialRewardPath()
    (adjusted,) = path.role_adjust([raw], spies=[3])
    # b_spy = 0.1 * r_spy, b_civ = 0.1 * mean(civilians) (float32-rounded inputs).
    assert path.b_spy == pytest.approx(0.1 * raw[2], rel=1e-6)
    assert adjusted[2] == pytest.approx(0.9 * raw[2], rel=1e-6)
    # Two GPUs: the EMA step takes the mean over GPUs of each game's role means.
    two = official.OfficialRewardPath()
    two.role_adjust([raw, [-r for r in raw]], spies=[3, 3])
    assert (two.b_spy, two.b_civ) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_group_normalisation_and_schedule_by_hand():
    adv = official.group_normalize([2.49, -0.9])  # mean 0.795, population std 1.695
    assert adv == pytest.approx([1.0, -1.0], abs=1e-6)
    assert official.group_normalize([-0.9, -0.9]) == [0.0, 0.0]
    assert [official.phase_of_step(t, 1) for t in range(4)] == [
        "decision", "clue", "decision", "clue"
    ]  # fmt: skip
    assert official.trained_phases("clue") == {"clue", "decision"}
