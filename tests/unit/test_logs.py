"""A plain command prints only its own output: importing the model stack puts no library
warnings or INFO tracebacks on the terminal; --verbose shows them and a log file keeps them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from vzero_nemo import logs
logs.configure(verbose={verbose}, log_file={log_file!r})
from vzero_nemo.training import setup  # megatron-core + Megatron-Bridge + transformers
import logging
logging.getLogger("vzero_nemo.test").info("own progress line")
print("done")
"""


def _run(tmp_path: Path, verbose: bool, log_file: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("VZERO_VERBOSE", None)
    env.pop("VZERO_LOG_FILE", None)
    code = SCRIPT.format(verbose=verbose, log_file=log_file)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_quiet_terminal_verbose_terminal_and_log_file(tmp_path):
    log = tmp_path / "logs" / "run.log"
    quiet = _run(tmp_path, False, str(log))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout.strip() == "done"
    assert quiet.stderr.strip() == "INFO vzero_nemo.test: own progress line"
    kept = log.read_text()
    assert "UserWarning" in kept and "Traceback" in kept  # the details are in the file
    loud = _run(tmp_path, True, None)
    assert loud.returncode == 0
    assert "UserWarning" in loud.stderr and "own progress line" in loud.stderr
