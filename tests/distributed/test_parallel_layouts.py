"""TP=2, PP=2, PP=2 x VPP=2 and DP=2 reproduce one process; a TP=1 checkpoint loads at TP=2.

Two tiny models (a megatron-core GPT and Megatron-Bridge's Qwen2.5-VL, see
`_parallel_models.py`): one reference process and one 2-rank launch (gloo, loopback) cover
every layout of both; `_parallel_worker.py` documents what is compared.

    .venv/bin/python -m pytest tests/distributed/test_parallel_layouts.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

WORKER = Path(__file__).with_name("_parallel_worker.py")
TOLERANCE = 1e-5
MODELS = ("gpt", "qwen25vl")
LAYOUTS = {"gpt": ("tp2", "pp2", "pp2_vpp2", "dp2"), "qwen25vl": ("tp2", "pp2", "dp2")}
QUANTITIES = ("logits", "loss", "grads", "grad_norm", "adam_weights")


@pytest.fixture(scope="module")
def results(tmp_path_factory, launch) -> dict:
    out = tmp_path_factory.mktemp("parallel_layouts")
    dump = ["--hang-dump-s", "240"]  # stacks in the logs before the launcher's deadline
    launch(WORKER, 1, ["reference", "--out", str(out), *dump], out / "logs_ref", timeout_s=300)
    launch(WORKER, 2, ["compare", "--out", str(out), *dump], out / "logs_cmp", timeout_s=300)
    return {
        model: {
            "diffs": json.loads((out / f"diffs_{model}.json").read_text()),
            "scale": json.loads((out / f"reference_{model}.json").read_text()),
        }
        for model in MODELS
    }


@pytest.mark.parametrize("model", MODELS)
def test_reference_step_is_not_trivial(results, model):
    scale = results[model]["scale"]
    assert scale["max_abs_grad"] > 1e-3
    assert scale["grad_norm"] > scale["clip_grad"], "clipping must be active in the step"
    assert scale["max_abs_adam_update"] > 50 * TOLERANCE  # the first Adam step moves ~lr
    assert scale["max_abs_logit"] > 0.1


@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize(
    ("model", "layout"), [(model, layout) for model in MODELS for layout in LAYOUTS[model]]
)
def test_layout_matches_single_process(results, model, layout, quantity):
    diff = results[model]["diffs"][layout][quantity]
    assert diff <= TOLERANCE, f"{model} {layout} {quantity}: max |diff| {diff:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("layout", ["tp2", "dp2"])
@pytest.mark.parametrize("model", MODELS)
def test_same_seed_gives_the_same_initial_weights(results, model, layout):
    # CPU initialisation slices full tensors drawn from the seeded stream (not so across
    # pipeline stages, which restart it: PP layouts start from a loaded checkpoint).
    assert results[model]["diffs"][layout]["init_weights"] == 0.0


@pytest.mark.parametrize("model", MODELS)
def test_tp1_checkpoint_reloads_at_tp2_bit_exact(results, model):
    ckpt = results[model]["diffs"]["ckpt_tp1_to_tp2"]
    assert ckpt["weights_before_load"] > 1e-2  # the TP=2 model started from other weights
    assert ckpt["weights"] == 0.0
