"""Intervals of the evaluation suite: Wilson intervals and the paired bootstrap over games."""

from __future__ import annotations

import numpy as np
import pytest

from vzero_nemo.eval.stats import mean_row, paired_bootstrap, rate_row, wilson

pytestmark = pytest.mark.unit


def test_wilson_matches_reference_values():
    # Reference values of the Wilson score interval (z = 1.96).
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    lo, hi = wilson(0, 0)
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson(3, 2)


def test_rate_row_pools_per_game_counts():
    row = rate_row([1, 0, 2], [2, 2, 4])  # 3 of 8 votes
    assert row["value"] == pytest.approx(3 / 8) and row["den"] == 8
    assert row["lo"] < 3 / 8 < row["hi"]
    assert mean_row([1.0, -1.0, 0.0])["value"] == 0.0


def test_paired_bootstrap_no_change_and_a_real_shift():
    rng = np.random.default_rng(0)
    before = rng.integers(0, 2, 400).astype(float)
    same = paired_bootstrap((before, np.ones(400)), (before, np.ones(400)))
    assert same["delta"] == 0.0 and same["lo"] == 0.0 and same["hi"] == 0.0
    assert same["units"] == same["items"] == 400
    # Flip 80 losses to wins: +0.2 exactly, interval around it and away from 0.
    after = before.copy()
    after[np.flatnonzero(before == 0)[:80]] = 1.0
    shift = paired_bootstrap((before, np.ones(400)), (after, np.ones(400)), seed=1)
    assert shift["delta"] == pytest.approx(0.2)
    assert 0.0 < shift["lo"] < 0.2 < shift["hi"] < 0.3


def test_paired_bootstrap_is_narrower_than_unpaired_and_resamples_units():
    rng = np.random.default_rng(2)
    before = rng.integers(0, 2, 300).astype(float)
    after = before.copy()
    after[rng.choice(300, 20, replace=False)] = 1.0
    ones = np.ones(300)
    paired = paired_bootstrap((before, ones), (after, ones))
    b_lo, b_hi = wilson(before.sum(), 300)
    assert paired["hi"] - paired["lo"] < (b_hi - b_lo) / 2
    # The same 100 pairs played three times: 100 units, a wider interval than 300 games.
    units = [str(i % 100) for i in range(300)]
    clustered = paired_bootstrap((before, ones), (after, ones), units)
    assert clustered["units"] == 100 and clustered["items"] == 300
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap((before, ones), (after[:10], ones[:10]))
