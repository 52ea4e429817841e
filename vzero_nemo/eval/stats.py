"""Intervals for evaluation numbers: Wilson intervals for rates, paired bootstrap for changes.

    wilson(12, 40)                          # (lo, hi) of 12 successes in 40 trials, 95 %
    rate_row(num_G, den_G)                  # {"value", "lo", "hi", "num", "den"}
    paired_bootstrap(before, after, units)  # {"delta", "lo", "hi", "units"}

A rate over games is a ratio of per-game sums (decision accuracy: 1 / 1 per game; vote
accuracy: correct votes / votes of the game). Its interval treats the denominator's items as
independent trials (Wilson score interval, Wilson 1927), which is exact for per-game rates and
slightly narrow for per-vote rates (votes of one game share its clues).

A change between two evaluations of the SAME games (before/after training, A/B) is the
difference of the two ratios; its interval resamples whole units (a game, or a pair played
several times) with replacement and takes the 2.5 / 97.5 percentiles of the resampled
differences (percentile bootstrap). Pairing removes the between-game variance both sides share,
so the interval is much narrower than two independent Wilson intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054


def wilson(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of `successes` / `trials` (nan, nan for no trials)."""
    if trials < 0 or successes < 0 or successes > trials + 1e-9:
        raise ValueError(f"wilson needs 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_row(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """sum(num) / sum(den) with its Wilson interval; per-unit counts in, one row out."""
    k, n = float(np.sum(num)), float(np.sum(den))
    lo, hi = wilson(k, n)
    return {"value": k / n if n else math.nan, "lo": lo, "hi": hi, "num": k, "den": n}


def mean_row(values: Sequence[float]) -> dict[str, float]:
    """Mean of unbounded per-item values (e.g. rewards) with a normal 95 % interval."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"value": math.nan, "lo": math.nan, "hi": math.nan, "num": 0.0, "den": 0.0}
    half = Z_95 * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else math.nan
    mean = float(x.mean())
    return {"value": mean, "lo": mean - half, "hi": mean + half, "num": mean, "den": x.size}


def _unit_sums(values: np.ndarray, unit_index: np.ndarray, num_units: int) -> np.ndarray:
    return np.bincount(unit_index, weights=values, minlength=num_units)


def paired_bootstrap(
    before: tuple[Sequence[float], Sequence[float]],
    after: tuple[Sequence[float], Sequence[float]],
    units: Sequence[str] | None = None,
    *,
    num_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Change after - before of a ratio of sums, evaluated on the same items on both sides.

    before / after: (num_G, den_G) per item (a game), in the same item order on both sides.
    units: the resampled unit of each item (default: each item its own unit); items that
        share a unit (a pair replayed with other spy seats) are resampled together.
    Returns {"delta", "lo", "hi", "units", "items"}: the observed change and its 95 %
    percentile-bootstrap interval.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (*before, *after)]
    items = arrays[0].size
    if any(a.size != items for a in arrays):
        raise ValueError(
            "paired_bootstrap needs the same items on both sides; got sizes "
            f"{[a.size for a in arrays]}"
        )
    labels = list(range(items)) if units is None else list(units)
    if len(labels) != items:
        raise ValueError(f"units has {len(labels)} entries for {items} items")
    _, unit_index = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    num_units = int(unit_index.max()) + 1 if items else 0
    b_num, b_den, a_num, a_den = (_unit_sums(a, unit_index, num_units) for a in arrays)

    def delta(weights: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ a_num) / (weights @ a_den) - (weights @ b_num) / (weights @ b_den)

    observed = float(delta(np.ones((1, num_units)))[0]) if num_units else math.nan
    if num_units < 2:
        return {
            "delta": observed,
            "lo": math.nan,
            "hi": math.nan,
            "units": num_units,
            "items": items,
        }
    rng = np.random.default_rng(seed)
    # Multinomial counts = how often each unit is drawn in one resample of num_units draws.
    weights = rng.multinomial(num_units, np.full(num_units, 1.0 / num_units), size=num_resamples)
    samples = delta(weights.astype(np.float64))
    samples = samples[np.isfinite(samples)]
    lo, hi = np.percentile(samples, [2.5, 97.5]) if samples.size else (math.nan, math.nan)
    return {"delta": observed, "lo": float(lo), "hi": float(hi), "units": num_units, "items": items}
