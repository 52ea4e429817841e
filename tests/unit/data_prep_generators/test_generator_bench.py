"""The throughput bench runs worker processes and reports rates per case."""

import pytest

from data_prep.bench import main, run_bench

pytestmark = pytest.mark.unit


def test_bench_reports_generation_and_decode_rates(capsys):
    results = run_bench(num_pairs=3, workers=1, cases=("clevr_grid",))
    assert set(results) == {"clevr_grid", "decode_clevr_grid"}
    assert results["clevr_grid"]["num_pairs"] == 3
    grid = results["clevr_grid"]
    # Rates are printed, not asserted against a floor: CI machines are shared and noisy.
    assert grid["pairs_per_s"] > 0
    assert grid["cpu_ms_per_pair"] > 0
    assert grid["cpu_bound_pairs_per_s"] == pytest.approx(1000 / grid["cpu_ms_per_pair"])
    assert results["decode_clevr_grid"]["pairs_per_s"] > 0
    with pytest.raises(ValueError, match="unknown bench cases"):
        run_bench(num_pairs=1, cases=("clevr_huge",))


def test_bench_main_prints_a_table(capsys):
    assert main(["--domains", "clevr_grid", "--num-pairs", "2", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "clevr_grid" in out and "decode_clevr_grid" in out
