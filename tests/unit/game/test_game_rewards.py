"""Rewards: paper Eq. 1 (clue, zero-sum) and Eq. 4 (decision), official shaping, outcomes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vzero_nemo.game.rewards import (
    clue_rewards,
    count_votes,
    decision_credit,
    decision_reward,
)

pytestmark = pytest.mark.unit


def test_eq1_hand_worked_one_spy():
    # 4 players, spy = seat 2, valid votes received [1, 0, 5, 2].
    # Civilians 0, 1, 3 got 1, 0, 2 -> mean v̄_c = 1; spy excess v_s - v̄_c = 5 - 1 = 4.
    # spy:   -0.1 * 4                       = -0.4
    # civ 0: (0.1 / 3) * 4 - 0.1 * (1 - 1) =  0.13333...
    # civ 1: (0.1 / 3) * 4 - 0.1 * (0 - 1) =  0.23333...
    # civ 3: (0.1 / 3) * 4 - 0.1 * (2 - 1) =  0.03333...
    r = clue_rewards([1, 0, 5, 2], spy_seats=[2])
    assert r == pytest.approx([0.4 / 3, 0.4 / 3 + 0.1, -0.4, 0.4 / 3 - 0.1], abs=1e-12)
    assert sum(r) == pytest.approx(0.0, abs=1e-12)


def test_eq1_beta_lambda_are_separate():
    # beta = 0.2, lam = 0.5; votes [0, 3, 1], spy seat 1; civilians 0 and 2: v̄_c = 0.5.
    # spy: -0.2 * 2.5 = -0.5; civ 0: 0.2/2 * 2.5 - 0.5 * (0 - 0.5) = 0.25 + 0.25 = 0.5;
    # civ 2: 0.25 - 0.5 * 0.5 = 0.0.
    r = clue_rewards([0, 3, 1], [1], beta=0.2, lam=0.5)
    assert r == pytest.approx([0.5, -0.5, 0.0], abs=1e-12)


def test_eq1_no_votes_is_all_zero_and_spy_ignored_is_positive():
    assert clue_rewards([0, 0, 0, 0], [3]) == [0.0, 0.0, 0.0, 0.0]
    # Nobody suspects the spy, everybody suspects civilian 0 (8 votes): v̄_c = 8/3.
    r = clue_rewards([8, 0, 0, 0], [3])
    assert r[3] == pytest.approx(0.1 * 8 / 3)  # the spy gains
    assert r[0] == pytest.approx(0.1 / 3 * (-8 / 3) - 0.1 * (8 - 8 / 3))


def test_eq1_two_spies_share_the_excess():
    # 6 players, spies 1 and 4; votes [1, 4, 0, 1, 2, 0]: civilians 0, 2, 3, 5 -> v̄_c = 0.5.
    # excess: (4 - 0.5) + (2 - 0.5) = 5; spies: -0.35 and -0.15; civilian j:
    # 0.1/4 * 5 - 0.1 * (v_j - 0.5) = 0.125 - 0.1 * (v_j - 0.5).
    r = clue_rewards([1, 4, 0, 1, 2, 0], [1, 4])
    assert r == pytest.approx([0.075, -0.35, 0.175, 0.075, -0.15, 0.175], abs=1e-12)
    assert sum(r) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(3, 9).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 50), min_size=n, max_size=n),
            st.sets(st.integers(0, n - 1), min_size=1, max_size=(n - 1) // 2),
            st.floats(0, 2),
            st.floats(0, 2),
        )
    )
)
def test_eq1_is_zero_sum_for_any_votes(args):
    votes, spies, beta, lam = args
    r = clue_rewards(votes, sorted(spies), beta=beta, lam=lam)
    assert abs(sum(r)) < 1e-9 * (1 + max(votes))


def test_eq1_rejects_bad_input():
    with pytest.raises(ValueError, match="out of range"):
        clue_rewards([0, 1, 2], [3])
    with pytest.raises(ValueError, match="empty"):
        clue_rewards([0, 1, 2], [])
    with pytest.raises(ValueError, match="negative"):
        clue_rewards([0, -1, 2], [0])
    with pytest.raises(ValueError, match="repeated"):
        clue_rewards([0, 1, 2, 3], [1, 1])


def test_eq4_paper_values():
    spies = [2]
    assert decision_reward(2, spies) == 1.0  # correct
    assert decision_reward("N/A", spies) == -0.5  # abstain
    assert decision_reward(0, spies) == -1.0  # wrong
    assert decision_reward(None, spies) == -1.0  # invalid
    assert decision_reward(7, spies) == -1.0  # out of range is wrong


def test_eq4_official_code_shaping():
    # 0.3 * (2 * fmt - 1) + 1.2 * a + 0.99 * [a > 0]
    spies = [1]
    assert decision_reward(1, spies, "official_code", format_ok=True) == pytest.approx(
        0.3 + 1.2 + 0.99
    )  # 2.49
    assert decision_reward(1, spies, "official_code", format_ok=False) == pytest.approx(
        -0.3 + 1.2 + 0.99
    )  # 1.89
    assert decision_reward("N/A", spies, "official_code", format_ok=True) == pytest.approx(
        0.3 - 0.6
    )  # -0.3
    assert decision_reward(0, spies, "official_code", format_ok=True) == pytest.approx(0.3 - 1.2)
    # invalid vote, format unknown -> treated as format failure: -0.3 - 1.2 = -1.5
    assert decision_reward(None, spies, "official_code") == pytest.approx(-1.5)


def test_decision_reward_rejects_unknowns():
    with pytest.raises(ValueError, match="preset"):
        decision_reward(0, [0], "nope")
    with pytest.raises(ValueError, match="vote="):
        decision_reward("2", [0])
    with pytest.raises(ValueError, match="vote="):
        decision_reward(True, [0])


def test_count_votes_and_plurality_credit():
    votes = [2, 2, "N/A", None, 0, 2, 9, "N/A"]
    assert count_votes(votes, 4) == [1, 0, 3, 0]
    assert decision_credit([1, 0, 3, 0], [2]) == 1.0
    assert decision_credit([1, 0, 3, 0], [0]) == 0.0
    assert decision_credit([2, 2, 1, 0], [0]) == 0.5  # 2-way tie containing the spy
    assert decision_credit([1, 1, 1, 1], [3]) == 0.25
    assert decision_credit([0, 0, 0, 0], [3]) == 0.0  # only N/A / invalid votes
    assert decision_credit([2, 2, 0, 0, 0], [0, 1]) == 1.0  # both tied seats are spies
