"""The tiny Qwen2.5-VL policy gives the same token log-probs and entropies at TP=2 and PP=2.

One 2-rank launch (gloo, loopback). Rank 0 writes a random tiny HF Qwen2.5-VL checkpoint;
then, for each layout in turn (TP1 x DP2 reference, TP=2, PP=2), both ranks build the policy,
import the checkpoint through Megatron-Bridge (which shards it) and run megatron-core's
forward-only pipeline schedule over 2 micro-batches of a left-padded batch of 4 image +
text sequences of different lengths. Log-probs of the next tokens and entropies are computed
vocab-parallel (`vzero_nemo.models.logprobs`) on the last stage and compared with the
reference on real tokens. This file is also the worker:

    .venv/bin/python -m pytest tests/distributed/test_models_parallel.py -q
    python tests/distributed/test_models_parallel.py --out /tmp/models_par   # per rank
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

TOLERANCE = 1e-5
SEED = 1234
LAYOUTS = {"ref": (1, 1), "tp2": (2, 1), "pp2": (1, 2)}
MICRO = 2


@pytest.fixture(scope="module")
def diffs(tmp_path_factory, launch) -> dict:
    out = tmp_path_factory.mktemp("models_parallel")
    launch(Path(__file__), 2, ["--out", str(out)], out / "logs", timeout_s=240)
    return json.loads((out / "diffs.json").read_text())


@pytest.mark.parametrize("layout", ["tp2", "pp2"])
def test_logprobs_match_tp1(diffs, layout):
    print(f"{layout}: {diffs[layout]}")
    assert diffs[layout]["logp"] <= TOLERANCE
    assert diffs[layout]["entropy"] <= TOLERANCE


def test_reference_is_not_trivial(diffs):
    ref = diffs["ref"]
    assert ref["tokens"] > 100  # real next-token targets compared
    assert ref["logp_spread"] > 1.0  # log-probs vary: the model is far from uniform


# ---------------------------------------------------------------------- worker


def _model_cfg(hf_dir: Path | None = None):
    from vzero_nemo.config import ModelConfig

    return ModelConfig(
        size="tiny", min_pixels=48 * 48, max_pixels=96 * 96, hf_path=str(hf_dir) if hf_dir else None
    )


def _write_hf_checkpoint(hf_dir: Path) -> None:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vzero_nemo.models.hf_convert import hf_config_for
    from vzero_nemo.models.tokenizer import tiny_tokenizer

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(hf_config_for(_model_cfg()))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.1)
    model.save_pretrained(hf_dir)
    tiny_tokenizer().hf.save_pretrained(hf_dir)


def _batch():
    import numpy as np

    from vzero_nemo.models.batch import collate_prompts
    from vzero_nemo.models.chat import render_chat
    from vzero_nemo.models.tokenizer import tiny_tokenizer

    rng = np.random.default_rng(0)
    tok, cfg = tiny_tokenizer(), _model_cfg()
    prompts = []
    for i, hw in enumerate([(48, 48), (96, 64), (64, 80), (48, 96)]):
        text = "Who is the spy? Answer 1-4 or N/A." + " Player 2 said: red cube." * i
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        response = rng.integers(0, 2036, 5 + 3 * i).tolist()
        prompts.append(render_chat(messages, tok, image, cfg).extend(response))
    return collate_prompts(prompts, tok, cfg)


def _forward_step(data_iterator, model):
    mb = next(data_iterator)
    logits = model(
        mb.input_ids,
        mb.position_ids,
        mb.causal_mask(),
        pixel_values=mb.pixel_values,
        image_grid_thw=mb.image_grid_thw,
    )
    return logits, partial(_score, mb)


def _score(mb, logits, non_loss_data: bool = False):
    from vzero_nemo.models.logprobs import token_entropy, token_logprobs

    assert non_loss_data
    targets = mb.input_ids.roll(-1, dims=1)
    return {"logp": token_logprobs(logits, targets), "entropy": token_entropy(logits)}


def _run_layout(tp: int, pp: int, hf_dir: Path, batch) -> dict | None:
    import torch
    from megatron.core import parallel_state as mpu
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.parallel import cpu_compat, seed_all

    mpu.destroy_model_parallel()
    mpu.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    seed_all(SEED)
    cfg = _model_cfg(hf_dir)
    parallel = ParallelConfig(
        backend="gloo", tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp
    )
    model = build_policy(cfg, parallel)
    hf_convert.import_hf_weights([model], cfg)
    model.eval()
    micro_batches = [batch.rows(i, i + MICRO) for i in range(0, batch.input_ids.shape[0], MICRO)]
    with torch.no_grad(), cpu_compat.cuda_redirect():
        out = get_forward_backward_func()(
            forward_step_func=_forward_step,
            data_iterator=iter(micro_batches),
            model=[model],
            num_microbatches=len(micro_batches),
            seq_length=batch.input_ids.shape[1],
            micro_batch_size=MICRO,
            forward_only=True,
            collect_non_loss_data=True,
        )
    if not mpu.is_pipeline_last_stage():
        return None
    return {k: torch.cat([o[k] for o in out]) for k in ("logp", "entropy")}


def main() -> None:
    import torch

    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.parallel import all_gather_objects, destroy_parallel, initialize_parallel

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    state = initialize_parallel(ParallelConfig(backend="gloo"), seed=SEED)
    hf_dir = out / "hf_tiny"
    if state.rank == 0:
        _write_hf_checkpoint(hf_dir)
    torch.distributed.barrier()
    batch = _batch()
    real = batch.attention_mask & batch.attention_mask.roll(-1, dims=1)  # real token, real next
    real[:, -1] = False
    results = {name: _run_layout(tp, pp, hf_dir, batch) for name, (tp, pp) in LAYOUTS.items()}
    ref = results["ref"]
    diffs: dict[str, dict[str, float]] = {
        "ref": {"tokens": int(real.sum()), "logp_spread": float(ref["logp"][real].std())}
    }
    for name in ("tp2", "pp2"):
        got = results[name]
        diffs[name] = (
            {}
            if got is None
            else {k: float((got[k] - ref[k])[real].abs().max()) for k in ("logp", "entropy")}
        )
    gathered = all_gather_objects(diffs, group="world")
    if state.rank == 0:
        merged = {"ref": diffs["ref"]}
        for name in ("tp2", "pp2"):
            per_rank = [d[name] for d in gathered if d[name]]
            merged[name] = {k: max(d[k] for d in per_rank) for k in ("logp", "entropy")}
            merged[name]["ranks"] = len(per_rank)
        (out / "diffs.json").write_text(json.dumps(merged, indent=2))
    destroy_parallel()


if __name__ == "__main__":
    main()
