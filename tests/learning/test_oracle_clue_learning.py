"""Decision-stage GRPO learns: with informative (scripted oracle) clues, the observer's
held-out accuracy rises by >= 20 points within a few minutes of self-play.

The whole chain runs through the real entry points, as the main job does: tiny data set ->
pre-training of the generic grounding skills (never the spy) -> held-out games with oracle
clues -> `vzero_nemo.train` with `rollout.clue_policy=oracle` (only the votes train) -> the
same held-out games again. Seeds are fixed, so the numbers repeat on a given machine.

    bash scripts/test.sh learning
"""

from __future__ import annotations

import json
import sys

import pytest
from learning_run import records, run, train

pytestmark = pytest.mark.learning

ITERATIONS = 30
EVAL_GAMES = 96


def _evaluate(weights, data, out, games: int) -> dict:
    run([
        sys.executable, "-m", "vzero_nemo.eval.heldout", "--recipe", "tiny_cpu",
        "--weights", str(weights), "--out", str(out), f"eval.games={games}",
        f"data.path={data}", "rollout.clue_policy=oracle",
    ], 600)  # fmt: skip
    return json.loads(out.read_text())["metrics"]


@pytest.mark.timeout(2700)  # ~17 minutes on 2 cores: pre-training is most of it
def test_decision_grpo_with_oracle_clues_lifts_observer_accuracy(pretrained, tmp_path):
    data, pretrained = pretrained
    before = _evaluate(pretrained, data, tmp_path / "before.json", EVAL_GAMES)
    train(run_dir := tmp_path / "run", f"model.init_checkpoint={pretrained}",
          f"data.path={data}", "rollout.clue_policy=oracle", f"train.iterations={ITERATIONS}",
          f"checkpoint.save_interval={ITERATIONS}")  # fmt: skip
    after = _evaluate(run_dir / "checkpoints" / f"iter_{ITERATIONS:07d}" / "dist", data,
                      tmp_path / "after.json", EVAL_GAMES)  # fmt: skip
    log = records(run_dir)
    print(f"oracle-clue decision accuracy {before['decision_accuracy']:.3f} -> "
          f"{after['decision_accuracy']:.3f}, N/A {before['na_rate']:.3f} -> {after['na_rate']:.3f}")  # fmt: skip
    # The pre-trained observer answers uniformly at random: chance, whatever its reasoning.
    assert before["decision_accuracy"] < before["chance_accuracy"] + 0.15
    assert after["decision_accuracy"] >= before["decision_accuracy"] + 0.20
    assert after["na_rate"] <= 0.3 and after["invalid_vote_rate"] <= 0.1
    # Only the decision stage trained, and the policy stayed near the reference.
    assert {r["stage"] for r in log} == {"decision"}
    # (per-token KL to the frozen reference: ~0.03 on average; one early iteration of the
    # LR warmup spikes to ~0.5 and the penalty pulls it back within an iteration)
    kl = [r["train/kl"] for r in log]
    assert sum(kl) / len(kl) < 0.1 and max(kl[-10:]) < 0.1
