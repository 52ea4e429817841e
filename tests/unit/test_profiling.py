"""Timers: nested keys, laps, `region` reporting to the active timers only, the table."""

from __future__ import annotations

import time

import pytest

from vzero_nemo.profiling import Lap, Timers, format_profile, region

pytestmark = pytest.mark.unit


def test_nested_blocks_and_regions_accumulate_under_their_parents():
    timers = Timers()
    with region("ignored"):  # no active timers: nothing recorded
        pass
    with timers.active(), timers("rollout"):
        for _ in range(2):
            with region("decode"):
                time.sleep(0.01)
        with timers("prefill"), region("vision"):
            pass
    with region("after"):  # no longer active
        pass
    assert list(timers.totals) == [
        "rollout",
        "rollout/decode",
        "rollout/prefill",
        "rollout/prefill/vision",
    ]
    assert timers.counts["rollout/decode"] == 2
    assert timers.totals["rollout/decode"] >= 0.02
    assert timers.totals["rollout"] >= timers.totals["rollout/decode"]


def test_lap_returns_and_restarts():
    timers = Timers()
    with timers("a"):
        pass
    lap = timers.lap()
    assert set(lap.wall_s) == set(lap.cpu_s) == {"a"} and lap.counts == {"a": 1}
    assert timers.laps == 1
    assert timers.lap() == Lap({}, {}, {}) and timers.laps == 2


def test_table_lists_blocks_depth_first_with_self_time():
    totals = {"iteration": 10.0, "iteration/train": 6.0, "iteration/train/optimizer": 1.0}
    totals["checkpoint"] = 2.0
    cpu = {key: seconds / 2 for key, seconds in totals.items()}
    table = format_profile(Lap(totals, cpu, dict.fromkeys(totals, 1)), "title").splitlines()
    assert table[0] == "title"
    rows = [line.split() for line in table[2:]]
    assert [r[0] for r in rows] == ["iteration", "train", "optimizer", "checkpoint"]
    assert rows[0][1:5] == ["10.000", "83.3%", "5.000", "1"]  # share of iteration + checkpoint
    assert rows[0][-1] == "4.000" and rows[1][-1] == "5.000"  # time outside the children
