"""The learning tier's shared start: the main job's data set and pre-training (same seeds),
built once per session and used by every learning test."""

from __future__ import annotations

import sys

import pytest
from learning_run import run

from vzero_nemo.main_job import data_command

PRETRAIN_STEPS = 1000


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    """(data, pre-trained weights) as the main job makes them."""
    root = tmp_path_factory.mktemp("learning")
    data, weights = root / "data", root / "pretrained"
    run(data_command(data, num_pairs=1200, seed=0, workers=2), 600)
    run([
        sys.executable, "-m", "vzero_nemo.training.pretrain", "--recipe", "tiny_cpu",
        "--out", str(weights), f"pretrain.steps={PRETRAIN_STEPS}", "pretrain.eval_pairs=32",
        f"data.path={data}",
    ], 1800)  # fmt: skip
    return data, weights
