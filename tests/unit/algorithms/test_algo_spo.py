"""Iterative-SPO stage controller on scripted metric sequences."""

import dataclasses
import json

import pytest

from vzero_nemo.algorithms.spo import StageController
from vzero_nemo.config import SPOConfig, VZeroConfig

pytestmark = pytest.mark.unit


def controller(**kw):
    return StageController(dataclasses.replace(SPOConfig(), **kw))


def first_switch(ctrl, acc, na, limit=500):
    """1-based update index at which update() first returns a different stage."""
    start = ctrl.stage
    for t in range(1, limit + 1):
        if ctrl.update(acc, na) != start:
            return t
    return None


def test_paper_first_switch_at_iteration_45():
    # EMA from 0 with rho = 0.95 and acc = 1: 1 - 0.95^t; 1 - 0.95^44 = 0.8953 < 0.9 <=
    # 1 - 0.95^45 = 0.9006.
    ctrl = controller()
    assert ctrl.stage == "decision"
    assert first_switch(ctrl, 1.0, 0.0) == 45
    assert ctrl.stage == "clue" and ctrl.dwell == 0 and ctrl.num_switches == 1
    assert ctrl.acc_ema == pytest.approx(1 - 0.95**45)


def test_bias_correction_switches_at_k_min():
    # Corrected EMA = 1 from the first update, so only the dwell K_min = 5 holds it back.
    assert first_switch(controller(bias_correction=True), 1.0, 0.0) == 5
    assert first_switch(controller(bias_correction=True, min_dwell=12), 1.0, 0.0) == 12


def test_no_switch_before_k_min_even_when_thresholds_hold():
    ctrl = controller(bias_correction=True, min_dwell=8)
    stages = [ctrl.update(1.0, 0.0) for _ in range(8)]
    assert stages == ["decision"] * 7 + ["clue"]
    # Back in clue, a catastrophic iteration cannot switch back before 8 more updates.
    stages = [ctrl.update(0.0, 1.0) for _ in range(8)]
    assert stages == ["clue"] * 7 + ["decision"]


def test_clue_to_decision_on_error_by_hand():
    # Bias-corrected: 5 x acc 1 switch to clue at t = 5; then acc 0. At t = 10:
    # ema = (1 - 0.95^5) * 0.95^5 = 0.17490, corrected / (1 - 0.95^10) = 0.4359, error 0.564
    # >= 0.4, and the dwell is 5: switch back exactly at t = 10.
    ctrl = controller(bias_correction=True)
    assert first_switch(ctrl, 1.0, 0.0) == 5
    assert first_switch(ctrl, 0.0, 0.0) == 5
    expected = (1 - 0.95**5) * 0.95**5 / (1 - 0.95**10)
    assert ctrl.accuracy == pytest.approx(expected)
    assert ctrl.stage == "decision"


def test_clue_to_decision_on_na_rate():
    ctrl = controller(start_stage="clue", bias_correction=True)
    # accuracy stays perfect, but everybody abstains: na >= 0.5 switches after K_min.
    assert first_switch(ctrl, 1.0, 1.0) == 5


def test_decision_stays_while_na_is_high_or_accuracy_low():
    assert first_switch(controller(bias_correction=True), 1.0, 0.2, limit=300) is None
    assert first_switch(controller(bias_correction=True), 0.85, 0.0, limit=300) is None
    # Clue stays while the error is small and few abstain.
    ctrl = controller(start_stage="clue", bias_correction=True)
    assert first_switch(ctrl, 0.7, 0.4, limit=300) is None


def test_alternate_schedule_switches_every_iteration():
    ctrl = controller(schedule="alternate")
    assert [ctrl.update(0.5, 0.5) for _ in range(5)] == [
        "clue", "decision", "clue", "decision", "clue"
    ]  # fmt: skip
    assert ctrl.num_switches == 5
    cfg = VZeroConfig().apply_overrides(["preset=official_code"])
    official = StageController(cfg.spo)
    assert [official.update(1.0, 0.0) for _ in range(3)] == ["clue", "decision", "clue"]


@pytest.mark.parametrize("cycle_length", [1, 3, 10])
def test_alternate_cycle_length_matches_the_official_phase_of_each_step(cycle_length):
    # Official `interactive` phase of optimizer step t (grpo_trainer.py L919-925): decision
    # when t % (2 * L) < L, else clue. Our stage of iteration t is the stage before update t.
    ctrl = controller(schedule="alternate", cycle_length=cycle_length)
    stages = []
    for _ in range(4 * cycle_length + 3):
        stages.append(ctrl.stage)
        ctrl.update(0.5, 0.5)
    official = [
        "decision" if t % (2 * cycle_length) < cycle_length else "clue" for t in range(len(stages))
    ]
    assert stages == official
    with pytest.raises(ValueError, match="spo.cycle_length=0"):
        controller(schedule="alternate", cycle_length=0)


def test_state_round_trip_resumes_identically():
    sequence = [(1.0, 0.0)] * 50 + [(0.0, 1.0)] * 20 + [(1.0, 0.0)] * 60
    ctrl = controller()
    for acc, na in sequence[:60]:
        ctrl.update(acc, na)
    state = json.loads(json.dumps(ctrl.state_dict()))  # plain, JSON-serialisable
    resumed = controller()
    resumed.load_state_dict(state)
    rest = sequence[60:]
    assert [resumed.update(*x) for x in rest] == [ctrl.update(*x) for x in rest]
    assert resumed.state_dict() == ctrl.state_dict()
    assert ctrl.num_switches == 3  # decision -> clue (t=45) -> decision -> clue


def test_invalid_inputs():
    ctrl = controller()
    for bad in (float("nan"), -0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="accuracy="):
            ctrl.update(bad, 0.0)
    with pytest.raises(ValueError, match="na_rate="):
        ctrl.update(0.5, float("inf"))
    assert ctrl.num_updates == 0  # rejected updates change nothing
    with pytest.raises(ValueError, match="state keys"):
        ctrl.load_state_dict({"stage": "clue"})
    with pytest.raises(ValueError, match="schedule"):
        controller(schedule="random")
    metrics = controller().metrics()
    assert metrics["spo/stage_is_clue"] == 0.0 and metrics["spo/dwell"] == 0.0
