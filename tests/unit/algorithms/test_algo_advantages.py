"""Group advantages (z-score / mean-only) against a loop reference; RAE by hand."""

import math
import random
import statistics

import pytest
import torch

from vzero_nemo.algorithms.advantages import (
    RoleBaselines,
    game_role_means,
    group_advantages,
    group_index,
)
from vzero_nemo.config import GRPOConfig, VZeroConfig

pytestmark = pytest.mark.unit


def loop_reference(rewards, groups, std_normalize=True, eps=1e-8, group_std="sample"):
    out = []
    for r, g in zip(rewards, groups):
        members = [x for x, h in zip(rewards, groups) if h == g]
        if max(members) == min(members):
            out.append(0.0)
            continue
        mean = math.fsum(members) / len(members)
        adv = r - mean
        if std_normalize:
            stdev = statistics.stdev if group_std == "sample" else statistics.pstdev
            adv /= stdev(members) + eps
        out.append(adv)
    return out


def test_hand_worked_group():
    # Group [1, -1, -0.5, 1]: mean 0.125; deviations 0.875, -1.125, -0.625, 0.875;
    # unbiased var = (0.765625 + 1.265625 + 0.390625 + 0.765625) / 3 = 1.0625, std 1.030776.
    r = torch.tensor([1.0, -1.0, -0.5, 1.0])
    idx = torch.zeros(4, dtype=torch.long)
    std = math.sqrt(1.0625)
    expected = [0.875 / std, -1.125 / std, -0.625 / std, 0.875 / std]
    assert group_advantages(r, idx).tolist() == pytest.approx(expected, abs=1e-6)
    mean_only = group_advantages(r, idx, std_normalize=False)
    assert mean_only.tolist() == pytest.approx([0.875, -1.125, -0.625, 0.875])


def test_constant_groups_are_exactly_zero():
    # The mean of [0.1] * 3 is 0.10000000000000002 and of [0.7] * 7 is 0.7 + 1e-16 in float64:
    # without the explicit constant-group rule the advantages would be noise / (~0 + 1e-8),
    # i.e. about 1e-9 .. 1e-8 instead of 0. Groups of one are constant too.
    r = torch.tensor([0.1] * 3 + [0.7] * 7 + [1.0], dtype=torch.float64)
    idx = torch.tensor([0] * 3 + [1] * 7 + [2])
    for std_normalize in (True, False):
        assert torch.equal(
            group_advantages(r, idx, std_normalize=std_normalize), torch.zeros_like(r)
        )
    assert group_advantages(r.float(), idx).dtype == torch.float32


@pytest.mark.parametrize("std_normalize", [True, False])
def test_vectorised_matches_loop_reference(std_normalize):
    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(1, 60)
        groups = [rng.randrange(7) for _ in range(n)]
        rewards = [rng.choice([1.0, -0.5, -1.0, rng.uniform(-2, 3)]) for _ in range(n)]
        adv = group_advantages(
            torch.tensor(rewards, dtype=torch.float64),
            torch.tensor(groups),
            std_normalize=std_normalize,
        )
        assert adv.tolist() == pytest.approx(loop_reference(rewards, groups, std_normalize))


@pytest.mark.parametrize("group_std", ["sample", "population"])
def test_population_std_matches_loop_reference(group_std):
    rng = random.Random(1)
    for _ in range(30):
        n = rng.randint(1, 40)
        groups = [rng.randrange(5) for _ in range(n)]
        rewards = [rng.choice([1.89, -0.5, -1.5, -0.9, -0.3]) for _ in range(n)]
        adv = group_advantages(
            torch.tensor(rewards, dtype=torch.float64), torch.tensor(groups), group_std=group_std
        )
        expected = loop_reference(rewards, groups, group_std=group_std)
        assert adv.tolist() == pytest.approx(expected)


def test_population_std_is_sqrt_n_over_n_minus_1_larger():
    r = torch.tensor([1.0, -1.0, -1.0, 1.0, -0.5, 1.0, -1.0, -1.0], dtype=torch.float64)
    idx = torch.zeros(8, dtype=torch.long)
    ratio = group_advantages(r, idx, group_std="population") / group_advantages(r, idx)
    assert ratio.tolist() == pytest.approx([math.sqrt(8 / 7)] * 8)  # 1.069 at 8 votes
    with pytest.raises(ValueError, match="grpo.group_std='biased'"):
        group_advantages(r, idx, group_std="biased")


def test_group_index_and_input_checks():
    idx, names = group_index(["decision/g1", "decision/g0", "decision/g1"])
    assert idx.tolist() == [0, 1, 0] and names == ["decision/g1", "decision/g0"]
    with pytest.raises(ValueError, match="same length"):
        group_advantages(torch.zeros(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative int64"):
        group_advantages(torch.zeros(2), torch.tensor([0, -1]))
    assert group_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0


def test_rae_hand_computed_sequence_updated():
    # alpha = 0.95. Spy means 1.0, -1.0, 0.5; civilian means -0.2, 0.4, 0.0.
    # b_spy: 0.05 * 1 = 0.05; 0.95 * 0.05 - 0.05 = -0.0025; 0.95 * -0.0025 + 0.025 = 0.022625
    # b_civ: -0.01; 0.95 * -0.01 + 0.02 = 0.0105; 0.95 * 0.0105 = 0.009975
    b = RoleBaselines(alpha=0.95)
    steps = [([1.0, 1.0], [-0.2]), ([-1.0], [0.3, 0.5]), ([0.5], [0.0, 0.0, 0.0])]
    expected = [(0.05, -0.01), (-0.0025, 0.0105), (0.022625, 0.009975)]
    for (spy, civ), (e_spy, e_civ) in zip(steps, expected):
        assert b.update(spy, civ) is b
        assert (b.spy, b.civilian) == pytest.approx((e_spy, e_civ), abs=1e-12)
    adv = b.advantages(torch.tensor([0.5, 0.0]), torch.tensor([True, False]))
    assert adv.tolist() == pytest.approx([0.5 - 0.022625, -0.009975], abs=1e-7)
    assert b.num_updates == 3


def test_rae_previous_subtracts_the_baseline_from_before_the_step():
    b = RoleBaselines(alpha=0.9, subtract="previous")
    b.update([1.0], [0.0])  # b_spy 0 -> 0.1
    assert b.baseline("spy") == 0.0 and b.spy == pytest.approx(0.1)
    b.update([1.0], [0.0])  # 0.1 -> 0.19
    assert b.baseline("spy") == pytest.approx(0.1)
    adv = b.advantages(torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
    assert adv.tolist() == pytest.approx([0.9, 1.0])


def test_rae_accepts_tensors_and_global_means_identically():
    a, b = RoleBaselines(), RoleBaselines()
    a.update(torch.tensor([0.2, -0.4]), torch.tensor([0.1]))
    b.update(-0.1, 0.1)  # the trainer may pass the already-reduced global means
    assert (a.spy, a.civilian) == pytest.approx((b.spy, b.civilian))


def test_rae_state_round_trip_and_validation():
    b = RoleBaselines.from_config(GRPOConfig(rae_alpha=0.9, rae_subtract="previous"))
    b.update([0.3], [-0.1]).update([0.2], [0.4])
    state = b.state_dict()
    assert all(isinstance(v, int | float | str) for v in state.values())
    c = RoleBaselines()
    c.load_state_dict(state)
    assert c == b
    with pytest.raises(ValueError, match="state keys"):
        c.load_state_dict({"spy": 0.0})
    with pytest.raises(ValueError, match="alpha"):
        RoleBaselines(alpha=1.0)
    with pytest.raises(ValueError, match="no spy rewards"):
        RoleBaselines().update([], [1.0])
    with pytest.raises(ValueError, match="role="):
        RoleBaselines().baseline("observer")


def test_official_code_preset_sets_rae_alpha():
    cfg = VZeroConfig().apply_overrides(["preset=official_code"])
    assert RoleBaselines.from_config(cfg.grpo).alpha == 0.9
    assert RoleBaselines.from_config(VZeroConfig().grpo).alpha == 0.95


def test_game_role_means_and_per_game_updates_by_hand():
    # Game 0: spy (seat reward 0.4, two clue turns), civilians 0.1, -0.3 (two turns each);
    # game 1: spy -0.2, civilians 0.3, 0.0, -0.3 (one turn each).
    rewards = torch.tensor([0.4, 0.4, 0.1, 0.1, -0.3, -0.3, -0.2, 0.3, 0.0, -0.3])
    is_spy = torch.tensor([1, 1, 0, 0, 0, 0, 1, 0, 0, 0], dtype=torch.bool)
    game = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    means = game_role_means(rewards, is_spy, game, 2)
    assert means.flatten().tolist() == pytest.approx([0.4, -0.1, -0.2, 0.0], abs=1e-7)
    b = RoleBaselines(alpha=0.9)
    used = b.update_per_game(means)
    # b_spy: 0.1 * 0.4 = 0.04; 0.9 * 0.04 + 0.1 * -0.2 = 0.016. b_civ: -0.01; -0.009.
    assert used.flatten().tolist() == pytest.approx([0.04, -0.01, 0.016, -0.009], abs=1e-7)
    assert b.num_updates == 2 and (b.spy, b.civilian) == pytest.approx((0.016, -0.009), abs=1e-7)
    previous = RoleBaselines(alpha=0.9, subtract="previous")
    assert previous.update_per_game(means).flatten().tolist() == pytest.approx(
        [0, 0, 0.04, -0.01], abs=1e-7
    )
    with pytest.raises(ValueError, match=r"games \[1\] lack a spy or civilian"):
        game_role_means(rewards[:6], is_spy[:6], game[:6], 2)
    with pytest.raises(ValueError, match="must be \\[G, 2\\]"):
        b.update_per_game(torch.zeros(3))


def test_rae_bias_correction_removes_the_zero_start():
    plain = RoleBaselines(alpha=0.9)
    corrected = RoleBaselines.from_config(GRPOConfig(rae_alpha=0.9, rae_bias_correction=True))
    for spy, civ in ((-0.2, 0.1), (-0.2, 0.1), (-0.4, 0.05)):
        plain.update([spy], [civ])
        corrected.update([spy], [civ])
    # A constant reward is its own baseline from the first step on with the correction ...
    first = RoleBaselines(alpha=0.9, bias_correction=True).update([-0.2], [0.1])
    assert first.baseline("spy") == pytest.approx(-0.2)
    assert first.baseline("civilian") == pytest.approx(0.1)
    # ... and the corrected EMA is the plain one over 1 - alpha^t (the weights sum to one).
    assert corrected.baseline("spy") == pytest.approx(plain.spy / (1 - 0.9**3))
    assert corrected.level("civilian") == pytest.approx(plain.civilian / (1 - 0.9**3))
    corrected.subtract = "previous"
    assert corrected.baseline("spy") == pytest.approx(plain.previous_spy / (1 - 0.9**2))
    assert RoleBaselines(bias_correction=True).baseline("spy") == 0.0  # no update yet


def test_role_weights_equalise_the_roles_and_keep_the_total():
    from vzero_nemo.algorithms.advantages import role_weights

    is_spy = torch.tensor([True, False, False, False, True, False, False, False])
    w = role_weights(is_spy, num_spy=2, num_civilian=6)
    assert float(w[is_spy].sum()) == pytest.approx(float(w[~is_spy].sum()))
    assert float(w.sum()) == pytest.approx(8.0)
    assert torch.equal(role_weights(is_spy[1:4], num_spy=0, num_civilian=3), torch.ones(3).double())
    with pytest.raises(ValueError, match="must be >= 0"):
        role_weights(is_spy, num_spy=-1, num_civilian=6)
    spy_only = role_weights(is_spy, num_spy=2, num_civilian=6, spy_share=1.0)
    assert spy_only.tolist() == [4.0, 0, 0, 0, 4.0, 0, 0, 0]
    with pytest.raises(ValueError, match="spy_share=1.5"):
        role_weights(is_spy, num_spy=2, num_civilian=6, spy_share=1.5)
