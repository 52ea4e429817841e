"""The report of a real tiny run, opened in headless Chromium as a reader would: no console
errors, every figure and image loaded, no horizontal scroll at 1280 px; a screenshot is saved.
A page with a broken image, a console error and a too-wide block shows the check can fail.

Needs Debian's `chromium` (`.ci/run` installs it when absent). ~3 min on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tiny_run import ROOT, env, train_cmd

from vzero_nemo.eval.browser import check_page, find_browser

pytestmark = pytest.mark.browser
EVAL_FAST = [
    "eval.games=8", "eval.retention_items=6", "eval.sample_games=2", "game.num_votes=4",
    "rollout.max_clue_tokens=6", "rollout.max_vote_tokens=12", "logging.wandb_mode=disabled",
]  # fmt: skip


def _eval(data, out, weights=None) -> None:
    cmd = [sys.executable, "-m", "vzero_nemo.eval", "run", "--recipe", "tiny_cpu",
           "--out", str(out), f"data.path={data}", *EVAL_FAST]  # fmt: skip
    if weights:
        cmd += ["--weights", str(weights)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env(), timeout=600)


def test_report_of_a_tiny_run_loads_cleanly_in_chromium(tiny_shards, tmp_path):
    find_browser()  # a clear error when Chromium is missing, never a skip
    run = tmp_path / "run"
    subprocess.run(train_cmd(run, tiny_shards, iterations=2), check=True, cwd=ROOT, env=env(),
                   timeout=900)  # fmt: skip
    latest = (run / "checkpoints" / "latest").read_text().strip()
    _eval(tiny_shards, run / "eval" / "before")
    _eval(tiny_shards, run / "eval" / "after", run / "checkpoints" / latest / "dist")
    report = [sys.executable, "-m", "vzero_nemo.eval.report", "--run", str(run)]
    subprocess.run(report, check=True, cwd=ROOT, env=env(), timeout=300)
    shot = tmp_path / "report.png"
    check = check_page(run / "report.html", screenshot=shot)
    assert check.console_errors == []
    assert check.broken_images == []
    assert check.horizontal_overflow_px == 0, (check.scroll_width, check.client_width)
    # curves + one image pair per sample game, all decoded
    assert len(check.images) >= 5 and all(i["width"] > 100 for i in check.images)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_check_catches_broken_images_console_errors_and_overflow(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><img alt='missing' src='nope.png'>"
        "<div style='width:2000px'>wide</div><script>console.error('boom')</script></body></html>"
    )
    check = check_page(page)
    assert check.broken_images == ["missing"]
    assert any("boom" in e for e in check.console_errors)
    assert check.horizontal_overflow_px >= 2000 - 1280
    assert not check.ok
