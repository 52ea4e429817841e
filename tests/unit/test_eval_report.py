"""The run report: before/after tables for self-play and oracle-clue games, curve, skills."""

from __future__ import annotations

import json

import pytest

from vzero_nemo.eval.report import write_report

pytestmark = pytest.mark.unit


def _eval(accuracy: float, na: float) -> dict:
    metrics = {"decision_accuracy": accuracy, "na_rate": na, "games": 8.0, "chance_accuracy": 0.25}
    return {"metrics": metrics, "transcripts": [{"clues": ["<b>red cube</b>"]}]}


def _write(run, name: str, payload) -> None:
    (run / name).write_text(json.dumps(payload))


def test_report_has_both_tables_deltas_skills_and_escaped_games(tmp_path):
    run = tmp_path / "tiny"
    (run / "pretrained").mkdir(parents=True)
    _write(run, "eval_before.json", _eval(0.25, 0.0))
    _write(run, "eval_after.json", _eval(0.5, 0.125))
    _write(run, "eval_before_oracle.json", _eval(0.25, 0.0))
    _write(run, "eval_after_oracle.json", _eval(0.75, 0.0))
    _write(run, "pretrained/skills.json", {"skill/check_accuracy": 0.9})
    (run / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"iteration": i, "stage": "decision"}) for i in (1, 2)) + "\n"
    )
    summaries = write_report(run)
    assert summaries["self_play"]["decision_accuracy"]["delta"] == pytest.approx(0.25)
    assert summaries["oracle_clues"]["decision_accuracy"]["delta"] == pytest.approx(0.5)
    saved = json.loads((run / "report.json").read_text())
    assert saved["heldout_oracle_clues"]["na_rate"]["after"] == 0.0
    assert saved["pretrain_skills"] == {"skill/check_accuracy": 0.9}
    page = (run / "report.html").read_text()
    assert "scripted oracle clues" in page and "skill/check_accuracy" in page
    assert "&lt;b&gt;red cube" in page and "<b>red cube" not in page


def test_report_without_oracle_games_and_missing_eval_is_named(tmp_path):
    run = tmp_path / "plain"
    run.mkdir()
    with pytest.raises(ValueError, match="eval_before.json"):
        write_report(run)
    _write(run, "eval_before.json", _eval(0.25, 0.0))
    _write(run, "eval_after.json", _eval(0.25, 0.0))
    (run / "metrics.jsonl").write_text("")
    summaries = write_report(run)
    assert summaries["oracle_clues"] is None
    assert "scripted oracle clues" not in (run / "report.html").read_text()
