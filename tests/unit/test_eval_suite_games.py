"""The suite's held-out games: spread evenly over the val split's domains, a domain with too
few pairs replayed, the same games on every call (so before/after are paired)."""

from __future__ import annotations

from collections import Counter

import pytest

from data_prep.cli import main as data_prep
from vzero_nemo.eval.suite import select_games

pytestmark = pytest.mark.unit


def _generate(out, domain: str, num_pairs: int, *opts: str) -> None:
    args = ["generate", "--domain", domain, "--num-pairs", str(num_pairs), "--seed", "1",
            "--out", str(out), "--pairs-per-shard", "2", "--val-fraction", "0.5",
            "--workers", "1", "--no-progress", "--no-energon"]  # fmt: skip
    for opt in opts:
        args += ["--opt", opt]
    assert data_prep(args) == 0


def test_games_spread_over_domains_with_replays(tmp_path):
    out = tmp_path / "mixed"
    _generate(out, "clevr", 12, "width=48", "height=48", "layout=grid", "cell_size=16")
    _generate(out, "chart", 4, "width=160", "height=120")
    games = select_games(str(out), 13, seed=0)
    domains = Counter(g.pair.truth.domain for g in games)
    assert domains == {"chart": 7, "clevr": 6}  # evenly; the remainder to the first (sorted)
    chart_units = Counter(g.unit for g in games if g.pair.truth.domain == "chart")
    assert len(chart_units) == 2 and sorted(chart_units.values()) == [3, 4]  # 2 pairs replayed
    assert len({g.unit for g in games if g.pair.truth.domain == "clevr"}) == 6
    assert all(g.group.startswith("chart/") for g in games if g.pair.truth.domain == "chart")
    assert [g.unit for g in select_games(str(out), 13, seed=0)] == [g.unit for g in games]
    with pytest.raises(ValueError, match="eval.games=0"):
        select_games(str(out), 0, seed=0)
