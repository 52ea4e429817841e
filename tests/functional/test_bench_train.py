"""`python -m vzero_nemo.bench.train` on the tiny recipe: numbers that add up, on CPU.

.venv/bin/python -m pytest -m functional tests/functional/test_bench_train.py -q   # ~1 min
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tiny_run import FAST, ROOT, env

pytestmark = pytest.mark.functional


def test_bench_reports_rates_mfu_and_split(tiny_shards, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, "-m", "vzero_nemo.bench.train", "--recipe", "tiny_cpu",
        f"data.path={tiny_shards}", f"logging.dir={tmp_path / 'run'}", *FAST,
        "--iterations", "2", "--warmup", "1", "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MFU peak" in result.stdout and "measured: fp32" in result.stdout
    numbers = json.loads(out.read_text())
    rows, total = numbers["rows"], numbers["total"]
    assert [r["iteration"] for r in rows] == [1, 2]
    for r in rows:
        phases = r["rollout_s"] + r["logprobs_s"] + r["train_s"]
        assert 0 < phases <= r["iteration_s"] * 1.001
        assert r["generated_tokens"] > 0 and r["trained_tokens"] > 0 and r["gpus"] == 1
    assert total["trained_tokens"] == sum(r["trained_tokens"] for r in rows)
    assert 0 < total["train_mfu"] < 1
    assert total["train_tokens_per_s_per_gpu"] > total["end_to_end_tokens_per_s_per_gpu"] > 0
    assert set(numbers["predicted"]) == {"rollout_s", "logprobs_s", "train_s"}
