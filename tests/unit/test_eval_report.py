"""The run report from evaluation folders: paired changes with intervals, per domain and per
role, retention warnings, optional clue-eval / benchmark sections, figures, escaped text."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image

from vzero_nemo.eval import suite
from vzero_nemo.eval.report import write_report
from vzero_nemo.eval.report_inputs import load_clue_evals

pytestmark = pytest.mark.unit


def _record(unit: str, group: str, won: bool, rng: random.Random) -> dict:
    roles = {r: dict.fromkeys(suite.ROLE_COUNTS, 0.0) for r in suite.ROLES}
    roles["spy"].update(
        clues=1,
        format_ok=1,
        checked=1,
        contradicts=float(won),
        seats=1,
        reward=-0.1 if won else 0.1,
        votes_received=8 * won,
        seat_votes=8,
    )
    roles["civilian"].update(clues=3, format_ok=3, checked=3, grounded=rng.randint(0, 3),
                             seats=3, reward=0.1 if won else -0.1, seat_votes=24,
                             votes_received=0 if won else 8)  # fmt: skip
    return {"unit": unit, "group": group, "domain": group.split("/")[0], "spy_players": [2],
            "one": 1, "decision_credit": float(won), "votes": 8, "votes_spy": 8 * won,
            "votes_na": 0, "votes_invalid": 0, "roles": roles}  # fmt: skip


def _sample(index: int, clue: str) -> dict:
    players = [{"player": p, "role": "spy" if p == 2 else "civilian"} for p in (1, 2, 3, 4)]
    return {
        "game_index": index, "spy_players": [2], "players": players,
        "clues": [{"player": p, "clue": clue, "round": 1} for p in (1, 2, 3, 4)],
        "votes": [{"vote": 2, "completion": "<think>2 is wrong</think>"}, {"vote": "N/A",
                  "completion": ""}],
        "outcome": {"votes_received": [0, 1, 0, 0], "decision_credit": 1.0,
                    "clue_rewards": [0.03, -0.1, 0.03, 0.03]},
        "images": {"original": "images/o.png", "modified": "images/m.png"},
        "changes": [{"box": [0, 0, 16, 16], "kind": "recolor_reshape"}],
    }  # fmt: skip


def _write_eval(path, wins: list[bool], skills: dict, clue: str = "red cube") -> None:
    rng = random.Random(0)
    groups = ["clevr", "chart/bar"]
    records = [_record(f"p{i % 50}", groups[i % 2], w, rng) for i, w in enumerate(wins)]
    summary = suite.summarize(records)
    summary.update(skills=suite.summarize_skills(skills), clue_policy="model",
                   chance_accuracy=0.25, weights=None, seconds={"total": 1.0})  # fmt: skip
    (path / "images").mkdir(parents=True)
    Image.new("RGB", (48, 48), "gray").save(path / "images" / "o.png")
    Image.new("RGB", (48, 48), "blue").save(path / "images" / "m.png")
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "games.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "retention.json").write_text(json.dumps(skills))
    (path / "samples.json").write_text(json.dumps([_sample(0, clue), _sample(1, clue)]))


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "tiny"
    wins_before = [i % 4 == 0 for i in range(200)]
    wins_after = [i % 4 == 0 or i % 4 == 1 for i in range(200)]
    describe_before = [[1, 1]] * 100
    describe_after = [[1, 1]] * 40 + [[0, 1]] * 60  # a retention drop
    _write_eval(run / "eval" / "before", wins_before, {"describe": describe_before})
    _write_eval(run / "eval" / "after", wins_after, {"describe": describe_after}, "<b>red</b>")
    records = [{"iteration": i, "stage": "decision" if i < 4 else "clue",
                "game/decision_accuracy": 0.1 * i, "rae/baseline_spy": -0.01 * i,
                "time/rollout_s": 2.0, "time/train_s": 1.0} for i in range(1, 7)]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{torn")
    (run / "config.json").write_text(json.dumps({"recipe": "tiny_cpu", "spo": {}}))
    return run


def test_report_numbers_sections_and_files(run, tmp_path):
    numbers = write_report(run, markdown=tmp_path / "tables.md")
    md = (tmp_path / "tables.md").read_text()
    assert "| decision accuracy (per game) | 0.250 [" in md and "Warning: Retention" in md
    change = numbers["changes"]["overall"]["decision_accuracy"]
    assert change["delta"] == pytest.approx(0.25) and change["items"] == 200
    assert change["units"] == 50 and 0 < change["lo"] < 0.25 < change["hi"]
    assert set(numbers["changes"]["groups"]) == {"clevr", "chart/bar"}
    assert numbers["changes"]["roles"]["spy"]["clue_contradicts_original_rate"]["delta"] > 0
    assert len(numbers["warnings"]) == 1 and "describe" in numbers["warnings"][0]
    page = (run / "report.html").read_text()
    assert "decision accuracy: chart/bar" in page and "spy: mean clue reward" in page
    assert "&lt;b&gt;red&lt;/b&gt;" in page and "<b>red</b>" not in page
    assert "Retention: the describe skill dropped" in page
    assert "http://" not in page and "https://" not in page  # opens offline
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"accuracy.png", "clue_rewards.png", "time_split.png", "game_0000.png"} <= figures
    assert "kl.png" not in figures  # not logged: left out, not drawn empty
    assert page.count("data:image/png;base64,") == len(figures)


def test_report_reads_clue_eval_and_benchmarks(run):
    (run / "clue_eval.json").write_text(json.dumps([
        {"label": "after, frozen observer", "metrics": {"spy/contradiction_rate": 0.5,
         "civilian/contradiction_rate": 0.1, "observer_vote_accuracy": {"value": 0.4,
         "lo": 0.3, "hi": 0.5}}},
    ]))  # fmt: skip
    (run / "clue_eval_before.json").write_text(
        json.dumps({"metrics": {"spy": {"grounded_rate": 0.9}, "civilian": {"grounded_rate": 1}}})
    )
    (run / "clue_eval_broken.json").write_text("{not json")
    blocks = load_clue_evals(run)
    assert [b["columns"] for b in blocks] == [["spy", "civilian", "all"], ["spy", "civilian"]]
    assert blocks[0]["rows"][0] == {
        "label": "contradiction_rate",
        "values": ["0.500", "0.100", "-"],
    }
    (run / "benchmarks.json").write_text(
        json.dumps({"before": {"chartqa": {"acc": 0.2}}, "after": {"chartqa": {"acc": 0.25}}})
    )
    write_report(run)
    page = (run / "report.html").read_text()
    assert "frozen observer" in page and "0.400 [0.300, 0.500]" in page
    assert "chartqa" in page and "+0.050" in page


def test_report_names_missing_evaluations_and_unpaired_games(run, tmp_path):
    with pytest.raises(ValueError, match="eval/before and eval/after"):
        write_report(tmp_path)
    games = (run / "eval" / "after" / "games.jsonl").read_text().splitlines()
    (run / "eval" / "after" / "games.jsonl").write_text("\n".join(games[1:]) + "\n")
    with pytest.raises(ValueError, match="same games"):
        write_report(run)
