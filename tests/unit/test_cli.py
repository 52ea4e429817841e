"""Every entry point builds its config through `vzero_nemo.cli`: the same bad override gives
the same error and exit status 2 everywhere, before any model or data is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vzero_nemo.cli import build_config

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

ENTRY_POINTS = {
    "train": ["-m", "vzero_nemo.train", "--recipe", "tiny_cpu"],
    "pretrain": ["-m", "vzero_nemo.training.pretrain", "--out", "unused"],
    "eval": ["-m", "vzero_nemo.eval.heldout", "--out", "unused.json"],
    "eval_suite": ["-m", "vzero_nemo.eval", "run", "--out", "unused"],
    "benchmarks": [
        "-m",
        "vzero_nemo.eval.benchmarks",
        "--weights",
        "w",
        "--tasks",
        "t",
        "--out",
        "unused",
    ],
    "main_job": ["-m", "vzero_nemo.main_job"],
    "plan": ["-m", "vzero_nemo.plan", "--recipe", "tiny_cpu"],
    "bench_train": ["-m", "vzero_nemo.bench.train", "--recipe", "tiny_cpu"],
    "bench_rollout": ["-m", "vzero_nemo.bench.rollout"],
    "bench_iteration": ["-m", "vzero_nemo.bench.iteration"],
    "scaling_submit": ["-m", "vzero_nemo.scaling", "submit", "--recipe", "tiny_cpu",
                       "--runs-dir", "sweep", "--nodes", "1,2"],
    "scaling_sizes": ["-m", "vzero_nemo.scaling", "sizes", "--out", "sizes"],
}  # fmt: skip


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.parametrize("bad", ["train.lrr=1e-5", "game.num_players=two"])
def test_every_entry_point_reports_a_bad_override_the_same_way(tmp_path, bad):
    errors = {}
    for name, args in ENTRY_POINTS.items():
        result = _run([*args, bad], tmp_path)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        errors[name] = result.stderr.strip().splitlines()[-1]
    assert len(set(errors.values())) == 1, errors
    message = next(iter(errors.values()))
    assert message.startswith("error: ") and bad.split("=")[0] in message
    assert not list(tmp_path.iterdir()), "a failed command must write nothing"


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
