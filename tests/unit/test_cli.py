"""Every entry point builds its config through `vzero_nemo.cli`: the same bad override gives
the same error and exit status 2 everywhere, before any model or data is touched."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vzero_nemo.cli import build_config

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

# Every command that takes `key=value` overrides: (module with `main`, arguments before the
# override). `scripts/...` names a script file; the rest are modules run with `python -m`.
ENTRY_POINTS = {
    "train": ("vzero_nemo.train", ["--recipe", "tiny_cpu"]),
    "pretrain": ("vzero_nemo.training.pretrain", ["--out", "unused"]),
    "eval_heldout": ("vzero_nemo.eval.heldout", ["--out", "unused.json"]),
    "eval_run": ("vzero_nemo.eval.runner", ["run", "--out", "unused"]),
    "eval_clues": ("vzero_nemo.eval.clue_eval", ["--observer", "o", "--clues", "a=b",
                                                 "--out", "unused"]),
    "eval_benchmarks": ("vzero_nemo.eval.benchmarks", ["--weights", "w", "--tasks", "t",
                                                       "--out", "unused"]),
    "main_job": ("vzero_nemo.main_job", []),
    "ablate": ("vzero_nemo.experiments.ablate", ["--pretrained", "p", "--out", "unused"]),
    "update_direction": ("vzero_nemo.experiments.update_direction", []),
    "spy_floor": ("vzero_nemo.experiments.spy_floor", []),
    "plan": ("vzero_nemo.plan.__main__", ["--recipe", "tiny_cpu"]),
    "plan_size": ("vzero_nemo.plan.__main__", ["--size", "tiny"]),
    "plan_measure": ("vzero_nemo.plan.measure", []),
    "bench_train": ("vzero_nemo.bench.train", ["--recipe", "tiny_cpu"]),
    "bench_rollout": ("vzero_nemo.bench.rollout", []),
    "bench_iteration": ("vzero_nemo.bench.iteration", []),
    "scaling_submit": ("vzero_nemo.scaling.__main__", ["submit", "--recipe", "tiny_cpu",
                                                       "--runs-dir", "sweep", "--nodes", "1,2"]),
    "scaling_sizes": ("vzero_nemo.scaling.__main__", ["sizes", "--out", "sizes"]),
    "compare_parsers": ("scripts/compare_parsers.py", ["--weights", "w", "--before", "b",
                                                       "--out", "unused"]),
}  # fmt: skip


def _main(target: str) -> Callable[[list[str]], object]:
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, ROOT / target)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return module.main


def test_entry_point_list_is_complete():
    """A new command that takes overrides must be added above."""
    listed = {target for target, _ in ENTRY_POINTS.values()}
    users = set()
    for path in [
        *ROOT.joinpath("vzero_nemo").rglob("*.py"),
        *ROOT.joinpath("scripts").glob("*.py"),
    ]:
        text = path.read_text()
        if "add_config_arguments(" in text and path.name != "cli.py":
            rel = path.relative_to(ROOT)
            users.add(
                str(rel) if rel.parts[0] == "scripts" else ".".join(rel.with_suffix("").parts)
            )
    assert users <= listed, sorted(users - listed)


@pytest.mark.parametrize("bad", ["train.lrr=1e-5", "game.num_players=two"])
def test_every_entry_point_reports_a_bad_override_the_same_way(
    tmp_path, monkeypatch, capsys, process_state, bad
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    errors = {}
    for name, (target, args) in ENTRY_POINTS.items():
        with pytest.raises(SystemExit) as exit_info:
            _main(target)([*args, bad])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2, (name, stderr[-2000:])
        errors[name] = stderr.strip().splitlines()[-1]
    assert len(set(errors.values())) == 1, errors
    message = next(iter(errors.values()))
    key = bad.split("=")[0]
    assert message.startswith("error: ") and key in message
    if key == "train.lrr":
        assert "did you mean train.lr" in message
    assert not list(tmp_path.iterdir()), "a failed command must write nothing"


def test_a_bad_override_exits_2_from_the_shell(tmp_path):
    """The same through a real `python -m` process (stderr, exit status)."""
    result = subprocess.run(
        [sys.executable, "-m", "vzero_nemo.train", "--recipe", "tiny_cpu", "train.lrr=1e-5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    with pytest.raises(ValueError) as err:
        build_config("tiny_cpu", ["train.lrr=1e-5"])
    assert result.stderr.strip().splitlines()[-1] == f"error: {err.value}"
    assert str(err.value).startswith("unknown config key 'train.lrr'; did you mean train.lr,")


def test_unknown_key_names_close_matches():
    with pytest.raises(ValueError, match="did you mean train.lr"):
        build_config("tiny_cpu", ["train.lrr=1e-5"])


def test_pretrain_and_eval_sections_are_validated():
    with pytest.raises(ValueError, match="pretrain.tasks"):
        build_config("tiny_cpu", ["pretrain.tasks=caption,sing"])
    with pytest.raises(ValueError, match="eval.games"):
        build_config("tiny_cpu", ["eval.games=0"])
    cfg = build_config("tiny_cpu_long", ["pretrain.steps=7"])
    assert cfg.pretrain.steps == 7 and cfg.eval.games == 128
