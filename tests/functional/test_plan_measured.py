"""The planner against the memory of real training steps measured on CPU.

    .venv/bin/python -m pytest -m functional tests/functional/test_plan_measured.py -q

Stated errors (docs/results/planner_crosscheck.md has the table): static state exact; bytes
kept for backward within 10%; the step's peak above the static state (process RSS, allocator
slack included) within 25%. The 7b_1layer case (7B widths, one layer, two 224x224 images)
holds ~4.8 GB of fp32 weights, gradients and Adam state: ~7 GB of RAM, ~2 min.
"""

from __future__ import annotations

import pytest
from tiny_run import ROOT

from vzero_nemo.plan.crosscheck import measure_row

pytestmark = pytest.mark.functional

CASES = {
    "tiny": ["train.micro_batch_size=8"],
    "tiny_full_recompute": ["train.micro_batch_size=8", "model.recompute=full"],
    "tiny_l_selective": ["model.size=tiny_l", "train.micro_batch_size=4", "model.recompute=selective"],
    "7b_1layer": [
        "model.size=7b_1layer", "model.seq_length=256", "model.min_pixels=50176",
        "model.max_pixels=50176", "train.micro_batch_size=2",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_planner_matches_a_measured_step(name):
    row = measure_row(name, CASES[name], ROOT)
    assert row.static_planned == row.static_measured
    assert row.saved_planned == pytest.approx(row.saved_measured, rel=0.10)
    assert row.peak_planned == pytest.approx(row.peak_measured, rel=0.25)
