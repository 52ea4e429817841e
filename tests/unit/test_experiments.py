"""Ablation bookkeeping: the table's mean and spread, the figure, clue stages from switches."""

from __future__ import annotations

import pytest

from vzero_nemo.experiments.ablate import ROWS, main
from vzero_nemo.experiments.table import mean_spread, write_table
from vzero_nemo.training.stage_switches import clue_stage_eval_command, clue_stages

pytestmark = pytest.mark.unit


def _result(row: str, seed: int, acc: float) -> dict:
    own = {
        "decision_accuracy": acc, "clue/spy_contradicts_original_rate": 0.5,
        "clue/civilian_contradicts_original_rate": 0.1, "na_rate": 0.0,
    }  # fmt: skip
    return {"row": row, "seed": seed, "switches": 2, "clue_iterations": 10, "train_s": 100.0,
            "eval": {"own": own, "oracle": {**own, "decision_accuracy": acc + 0.1}}}  # fmt: skip


def test_table_reports_mean_and_half_range_per_row(tmp_path):
    results = [_result("iterative", 0, 0.40), _result("iterative", 1, 0.50),
               _result("rae_off", 0, 0.30), _result("rae_off", 1, 0.30)]  # fmt: skip
    before = {"own": {**_result("x", 0, 0.25)["eval"]["own"], "games": 128.0,
                      "chance_accuracy": 0.25}, "oracle": _result("x", 0, 0.25)["eval"]["oracle"]}  # fmt: skip
    write_table(results, before, tmp_path, "python -m vzero_nemo.experiments.ablate ...")
    text = (tmp_path / "ablation.md").read_text()
    assert "| iterative (2 seeds) | 0.450 ± 0.050 | 0.550 ± 0.050 |" in text
    assert "| rae_off (2 seeds) | 0.300 ± 0.000 |" in text
    assert "128" in text and "seeds [0, 1]" in text
    assert (tmp_path / "ablation.png").stat().st_size > 1000
    assert mean_spread([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), 1.5)


def test_table_shows_the_first_clue_stage_change_and_a_dash_without_one(tmp_path):
    def stage(spy_before: float, spy_after: float) -> dict:
        metrics = {"spy/contradicts_rate": spy_before, "civilian/grounded_rate": 0.9,
                   "observer/vote_accuracy": 0.4}  # fmt: skip
        return {"before": metrics, "after": {**metrics, "spy/contradicts_rate": spy_after}}

    results = [{**_result("iterative", 0, 0.4), "clue_stage": stage(0.5, 0.3)},
               {**_result("iterative", 1, 0.4), "clue_stage": stage(0.5, 0.4)},
               {**_result("decision_only", 0, 0.4), "clue_stage": None}]  # fmt: skip
    before = {"own": {**_result("x", 0, 0.25)["eval"]["own"], "games": 128.0,
                      "chance_accuracy": 0.25}, "oracle": _result("x", 0, 0.25)["eval"]["oracle"]}  # fmt: skip
    write_table(results, before, tmp_path, "cmd")
    lines = (tmp_path / "ablation.md").read_text().splitlines()
    iterative = next(x for x in lines if x.startswith("| iterative")).split(" | ")
    decision = next(x for x in lines if x.startswith("| decision_only")).split(" | ")
    # columns 6-8: change of spy contradiction, civilian grounded, frozen-observer accuracy
    assert iterative[6:9] == ["-0.150 ± 0.050", "0.000 ± 0.000", "0.000 ± 0.000"]
    assert decision[6:9] == ["-", "-", "-"]
    header = next(x for x in lines if x.startswith("| row"))
    assert len(header.split(" | ")) == len(iterative) == len(decision)


def test_ablate_rejects_unknown_rows_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--pretrained", str(tmp_path), "--out", str(tmp_path / "o"), "--rows", "nope"])
    assert exit_info.value.code == 2
    assert "unknown ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert {"iterative", "decision_only", "clue_only", "alternate", "rae_off"} <= set(ROWS)


def test_clue_stages_pair_each_entry_with_its_exit(tmp_path):
    switches = tmp_path / "stage_switches"
    for name in ("iter_0000006_decision_to_clue", "iter_0000011_clue_to_decision",
                 "iter_0000017_decision_to_clue"):  # fmt: skip
        (switches / name).mkdir(parents=True)
    final = tmp_path / "final"
    assert clue_stages(tmp_path, final) == [
        (switches / "iter_0000006_decision_to_clue", switches / "iter_0000011_clue_to_decision"),
        (switches / "iter_0000017_decision_to_clue", final),
    ]
    assert clue_stages(tmp_path / "none", final) == []


def test_clue_stage_command_is_what_clue_eval_accepts(tmp_path, capsys, process_state):
    """The launchers' command reaches clue_eval's own checks: every flag and override parses,
    and the frozen observer (the weights entering the stage) is missing here, so it stops
    there, naming that directory, before any work."""
    from vzero_nemo.eval import clue_eval

    start, end = tmp_path / "iter_0000005_decision_to_clue", tmp_path / "final"
    cmd = clue_stage_eval_command("tiny_cpu", start, end, tmp_path / "o.json", ["eval.games=8"])
    assert cmd[1:3] == ["-m", "vzero_nemo.eval.clue_eval"]
    assert cmd[cmd.index("--observer") + 1] == str(start)
    assert [cmd[i + 1] for i, x in enumerate(cmd) if x == "--clues"] == [
        f"before={start}",
        f"after={end}",
    ]
    with pytest.raises(SystemExit) as exit_info:
        clue_eval.main(cmd[3:])
    assert exit_info.value.code == 2
    assert f"weights directory {str(start)!r} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_size_study_collects_every_run_and_names_its_game_counts(tmp_path):
    import json

    from vzero_nemo.scaling import sizes

    def summary(folder, acc, games):
        folder.mkdir(parents=True)
        overall = {"decision_accuracy": {"value": acc}, "games": games}
        (folder / "summary.json").write_text(json.dumps({"overall": overall}))

    for seed, after in ((0, 0.40), (1, 0.30)):
        d = sizes.run_dir(tmp_path, "tiny", seed)
        summary(d / "eval" / "before", 0.25, 128)
        summary(d / "eval" / "before_oracle", 0.25, 64)
        summary(d / "eval" / "after", after, 128)
        summary(d / "eval" / "after_oracle", after + 0.1, 64)
        (d / "main_job_times.json").write_text(json.dumps({"pretrain": 10.0, "self_play": 5.0}))
        record = {"perf/rollout_tokens_per_s": 100.0, "time/rollout_s": 2.0}
        (d / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    rows = [sizes.summarize(tmp_path, "tiny", s, 0) for s in (0, 1)]
    rows.append(sizes.summarize(tmp_path, "tiny_l", 0, 0))  # never ran
    assert [r["status"] for r in rows] == ["completed", "completed", "missing"]
    per_size = sizes.aggregate(rows)
    assert len(per_size) == 1 and per_size[0]["gain"] == pytest.approx(0.10)
    assert (per_size[0]["gain_min"], per_size[0]["gain_max"]) == pytest.approx((0.05, 0.15))
    sizes.write_outputs(rows, per_size, tmp_path / "table", "python -m vzero_nemo.scaling sizes")
    text = (tmp_path / "table" / "sizes.md").read_text()
    assert "128 games on the held-out pairs" in text and "judged, 64 games" in text
    assert "| +0.100 (+0.050..+0.150) |" in text and "| tiny_l | 0 | missing |" in text
    assert (tmp_path / "table" / "sizes.png").stat().st_size > 0


def test_update_direction_correlation_and_its_refusals(capsys):
    from vzero_nemo.experiments.update_direction import correlation
    from vzero_nemo.experiments.update_direction import main as direction_main

    assert correlation([1.0, 2.0, 3.0], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert correlation([1.0, 2.0, 3.0], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same length >= 2, got 3 and 2"):
        correlation([1.0, 2.0, 3.0], [1.0, 2.0])
    # Refused before any model is built: there is nothing to start from.
    with pytest.raises(SystemExit) as exit_info:
        direction_main(["data.path=/nonexistent"])
    assert exit_info.value.code == 2
    assert "model.init_checkpoint is not set" in capsys.readouterr().err


def test_update_direction_groups_clues_by_role_plan_and_contradiction():
    from types import SimpleNamespace

    from vzero_nemo.config import ModelConfig
    from vzero_nemo.experiments.update_direction import _group, plan_token_index
    from vzero_nemo.models.tokenizer import load_tokenizer

    truth = SimpleNamespace(
        domain="clevr",
        original={"objects": [{"color": "red", "shape": "cube"}]},
        modified={"objects": [{"color": "blue", "shape": "cube"}]},
    )

    def sample(stage="clue", role="spy"):
        return SimpleNamespace(stage=stage, role=role, game_index=0, round=0, seat=1)

    def clues(text, plan):
        return {(0, 0, 1): {"clue": text, "reasoning": plan}}

    assert _group(sample("decision"), {}, [truth], True) == "vote"
    assert _group(sample(), clues("red cube", "agree"), [truth]) == "spy, consistent"
    assert _group(sample(), clues("blue cube", "new"), [truth], True) == "spy, new, contradicting"
    assert _group(sample(role="civilian"), clues("red cube", " Agree "), [truth], True) == (
        "civilian, agree, consistent"
    )
    assert _group(sample(), clues(None, "agree"), [truth], True) == "spy, agree"  # unreadable
    assert _group(sample(), clues("red cube", "maybe"), [truth], True) == (
        "spy, no plan, consistent"
    )
    # The plan word is the first token after "<think>" in the project's tokenizer.
    tok = load_tokenizer(ModelConfig(size="tiny"))
    at = plan_token_index(tok)
    for plan in ("agree", "new"):
        ids = tok.encode(f"<think>{plan}</think><answer>red cube</answer>")
        assert ids[:at] == tok.encode("<think>") and tok.decode(ids[at : at + 1]) in plan
