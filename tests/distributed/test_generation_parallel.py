"""KV-cached generation gives the same tokens and log-probs at TP=2 and PP=2 as at TP=1.

One 2-rank launch (gloo, loopback). Rank 0 writes a random tiny HF Qwen2.5-VL checkpoint;
then, for each layout in turn (TP1 x DP2 reference, TP=2, PP=2), both ranks build the policy,
import the checkpoint through Megatron-Bridge (which shards it) and run on 4 image + text
prompts of different lengths (left padding, one prompt repeated):
- greedy generation, then greedy with a stop token that ends some rows early,
- seeded sampling (temperature 1, top-p 0.9), also of 4 samples of each of two prompts
  (the cache then keeps each prompt's keys once),
- `sequence_logprobs` of prompt + greedy response (2 micro-batches through megatron-core's
  forward-only pipeline schedule), and `score_responses` of the same responses (KV-cached:
  each distinct prompt prefilled once, the responses as one block), against the reference
  layout's `sequence_logprobs`.
Every rank compares its own outputs with the reference. In every layout, every run is also
repeated with each decode step through megatron-core's layer forward instead of the lean
decode (`generation.decode_step`): tokens, finishes and log-probs must be exactly equal.
Vision once: prompts 0 and 2 show
the same image (one `ImagePatches`) and row 3 repeats prompt 1, so the batch encodes 2
images for 4 rows; in every
layout the same greedy run, scoring and (PP=1) the forward's logits, with every row holding
its own copy of the pixels instead, must agree to float rounding. This file is also the
worker:

    .venv/bin/python -m pytest tests/distributed/test_generation_parallel.py -q -s
    python tests/distributed/test_generation_parallel.py --out /tmp/gen_par   # per rank
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

TOLERANCE = 1e-5
VISION_ONCE_TOLERANCE = 1e-5
"""With every row holding its own copy of the pixels, rows 1 and 3 no longer share one prompt,
so the packed prefill has other shapes and float32 rounding may differ by a few ulps: the
generated log-probs differed by 2.1e-6 on one 2-core machine (its logits and
`sequence_logprobs` by 0) and by at most 1e-6 on the machines before it. The same tolerance
as across layouts."""
SEED = 1234
LAYOUTS = {"ref": (1, 1), "tp2": (2, 1), "pp2": (1, 2)}
MAX_NEW = 8
RUNS = ("greedy", "greedy_stop", "sampled", "shared")


@pytest.fixture(scope="module")
def diffs(tmp_path_factory, launch) -> dict:
    out = tmp_path_factory.mktemp("generation_parallel")
    launch(Path(__file__), 2, ["--out", str(out)], out / "logs", timeout_s=240)
    return json.loads((out / "diffs.json").read_text())


@pytest.mark.parametrize("layout", ["tp2", "pp2"])
def test_generation_matches_tp1(diffs, layout):
    got = diffs[layout]
    print(f"{layout}: {got}")
    assert got["ranks"] == 2
    for run in RUNS:
        assert got[f"{run}/same_tokens"], run
        assert got[f"{run}/same_finished"], run
        assert got[f"{run}/logp"] <= TOLERANCE, run
    assert got["sequence_logprobs"] <= TOLERANCE
    assert got["score_responses"] <= TOLERANCE


@pytest.mark.parametrize("layout", ["ref", "tp2", "pp2"])
def test_each_image_encoded_once_gives_the_same_result(diffs, layout):
    got = {k.removeprefix("vision_once/"): v for k, v in diffs[layout].items() if "vision" in k}
    print(f"{layout} vision once: {got}")
    assert got["images_in_batch"] == 2  # 4 rows: prompts 0 and 2 share one, row 3 repeats 1
    assert got["same_tokens"]
    assert got["logp"] <= VISION_ONCE_TOLERANCE
    assert got["sequence_logprobs"] <= VISION_ONCE_TOLERANCE
    if layout != "pp2":  # logits of this rank's vocabulary shard (one stage holds them all)
        assert got["logits"] <= VISION_ONCE_TOLERANCE


@pytest.mark.parametrize("layout", ["ref", "tp2", "pp2"])
def test_lean_decode_is_bit_identical_to_the_layer_forward(diffs, layout):
    got = diffs[layout]
    assert got["lean/used"]  # the tiny Qwen2.5-VL is within what the lean decode supports
    assert got["lean/identical"]  # tokens, finishes and log-probs, exactly


def test_reference_is_not_trivial(diffs):
    ref = diffs["ref"]
    print(f"ref: {ref}")
    assert 0 < ref["rows_stopped_early"] < 4  # the stop token ends some rows, not all
    assert ref["sampled_differs_from_greedy"]
    # Peaked next-token distributions: greedy tokens far above the uniform log(1 / vocab).
    assert ref["greedy_mean_logp"] > ref["uniform_logp"] + 2.0
    assert ref["sequence_vs_sampling_logp"] <= TOLERANCE  # scoring = sampling log-probs
    assert ref["score_vs_sequence_logprobs"] <= TOLERANCE  # cached scoring = training forward


# ---------------------------------------------------------------------- worker


def _model_cfg(hf_dir: Path | None = None):
    from vzero_nemo.config import ModelConfig

    return ModelConfig(size="tiny", hf_path=str(hf_dir) if hf_dir else None)


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
                param.normal_(0.0, 0.1)  # peaked next-token distributions
    model.save_pretrained(hf_dir)
    tiny_tokenizer().hf.save_pretrained(hf_dir)


def _prompts():
    import numpy as np

    from vzero_nemo.models.chat import image_patches, render_chat
    from vzero_nemo.models.tokenizer import tiny_tokenizer

    rng = np.random.default_rng(0)
    images = [
        image_patches(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), _model_cfg())
        for _ in range(2)
    ]
    prompts = []
    for i in range(3):
        text = "You are player 2 of 4, spy. Describe one object." + " Player 1 said: red cube." * i
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        prompts.append(render_chat(messages, tiny_tokenizer(), images[i % 2], _model_cfg()))
    return [prompts[0], prompts[1], prompts[2], prompts[1]]


def _with_own_pixels(prompts):
    """The same prompts, each holding its own copy of its pixels (one image per row)."""
    from vzero_nemo.models.chat import PromptInputs

    return [
        PromptInputs(p.input_ids, p.pixel_values.clone(), p.image_grid_thw.clone()) for p in prompts
    ]


def _run_layout(tp: int, pp: int, hf_dir: Path, prompts, stop_token: int | None) -> dict:
    import torch
    from megatron.core import parallel_state as mpu
    from megatron.core.enums import ModelType

    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.generation import SamplingParams, generate, sequence_logprobs
    from vzero_nemo.generation.score import score_responses
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.batch import collate_prompts
    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.models.tokenizer import tiny_tokenizer
    from vzero_nemo.parallel import seed_all
    from vzero_nemo.parallel.collective_check import check_collectives

    mpu.destroy_model_parallel()
    mpu.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    seed_all(SEED)
    cfg, tokenizer = _model_cfg(hf_dir), tiny_tokenizer()
    parallel = ParallelConfig(
        backend="gloo", tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp
    )
    model = build_policy(cfg, parallel, tokenizer=tokenizer)
    model.model_type = ModelType.encoder_or_decoder  # as the trainer sets it for schedules
    hf_convert.import_hf_weights([model], cfg)
    batch = collate_prompts(prompts, tokenizer, cfg)
    runs = {
        "greedy": SamplingParams(temperature=0, max_new_tokens=MAX_NEW),
        "sampled": SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=MAX_NEW),
    }
    # As under `parallel.check_collectives=true`: the project's collectives in generation take
    # tensors placed on the communication device (`parallel.to_comm`), the lean decode's too.
    with check_collectives():
        outs = {
            name: generate(model, batch, p, torch.Generator().manual_seed(7))
            for name, p in runs.items()
        }
        stop = outs["greedy"].token_ids[0][2] if stop_token is None else stop_token
        with_stop = SamplingParams(temperature=0, max_new_tokens=MAX_NEW, stop_token_ids=(stop,))
        outs["greedy_stop"] = generate(model, batch, with_stop, torch.Generator())
        # Four samples of each of two prompts: the cache keeps each prompt's keys once.
        votes = collate_prompts([p for p in prompts[:2] for _ in range(4)], tokenizer, cfg)
        outs["shared"] = generate(model, votes, runs["sampled"], torch.Generator().manual_seed(7))
        lean = _lean_vs_layer_forward(model, outs, batch, votes, runs, with_stop)

    full, mask = _scored_batch(prompts, outs["greedy"].token_ids, tokenizer, cfg)
    seq_logp = sequence_logprobs(model, full, mask, micro_batch_size=2)
    result = {
        name: {"tokens": o.token_ids, "logp": o.logprobs, "finished": o.finished}
        for name, o in outs.items()
    }
    result["sequence_logprobs"] = [seq_logp[row][mask[row]].tolist() for row in range(len(prompts))]
    result["stop_token"] = stop
    result["score_responses"] = score_responses(
        model, prompts, outs["greedy"].token_ids, tokenizer, cfg, max_batch=3
    )
    result["vision_once"] = _vision_once(model, prompts, tokenizer, cfg, logits=pp == 1)
    result["lean"] = lean
    return result


def _lean_vs_layer_forward(model, outs, batch, votes, runs, with_stop) -> dict:
    """Every run again with each decode step through megatron-core's layer forward: whether
    the lean decode (used in this layout?) gave the very same tokens, finishes and log-probs."""
    import torch

    from vzero_nemo.generation import generate
    from vzero_nemo.generation.decode_step import lean_decode_unsupported
    from vzero_nemo.generation.generate import unwrap_model

    again = {
        "greedy": (batch, runs["greedy"], 7),
        "sampled": (batch, runs["sampled"], 7),
        "greedy_stop": (batch, with_stop, None),
        "shared": (votes, runs["sampled"], 7),
    }
    identical = True
    for name, (rows, params, seed) in again.items():
        generator = torch.Generator() if seed is None else torch.Generator().manual_seed(seed)
        layers = generate(model, rows, params, generator, lean_decode=False)
        lean = outs[name]
        identical &= (lean.token_ids, lean.finished, lean.logprobs) == (
            layers.token_ids,
            layers.finished,
            layers.logprobs,
        )
    used = lean_decode_unsupported(unwrap_model(model).language_model) is None
    return {"lean/used": used, "lean/identical": identical}


def _scored_batch(prompts, responses, tokenizer, cfg):
    """Right-padded prompt + response batch and its response mask."""
    import torch

    from vzero_nemo.models.batch import collate_prompts

    rows = [p.extend(t) for p, t in zip(prompts, responses)]
    full = collate_prompts(rows, tokenizer, cfg, padding_side="right")
    mask = torch.zeros_like(full.attention_mask)
    for row, (prompt, response) in enumerate(zip(prompts, responses)):
        mask[row, len(prompt) : len(prompt) + len(response)] = True
    return full, mask


def _vision_once(model, prompts, tokenizer, cfg, logits: bool) -> dict:
    """Greedy tokens, their log-probs, scores and logits with the batch's shared images
    against every row holding its own copy: max differences."""
    import torch

    from vzero_nemo.generation import SamplingParams, generate, sequence_logprobs
    from vzero_nemo.models.batch import collate_prompts

    got = {}
    for name, rows in (("shared", prompts), ("copies", _with_own_pixels(prompts))):
        batch = collate_prompts(rows, tokenizer, cfg)
        greedy = SamplingParams(temperature=0, max_new_tokens=MAX_NEW)
        out = generate(model, batch, greedy, torch.Generator())
        full, mask = _scored_batch(rows, out.token_ids, tokenizer, cfg)
        scores = sequence_logprobs(model, full, mask, micro_batch_size=2)
        local_logits = torch.zeros(1)
        if logits:
            with torch.no_grad():
                local_logits = model(
                    full.input_ids, full.position_ids, full.causal_mask(), **full.vision_inputs()
                )
        got[name] = (batch.image_grid_thw.shape[0], out, scores, local_logits)
    (images, shared, shared_scores, shared_logits) = got["shared"]
    (_, copies, copies_scores, copies_logits) = got["copies"]
    return {
        "vision_once/images_in_batch": float(images),
        "vision_once/same_tokens": shared.token_ids == copies.token_ids,
        "vision_once/logp": _max_diff(shared.logprobs, copies.logprobs),
        "vision_once/sequence_logprobs": float((shared_scores - copies_scores).abs().max()),
        "vision_once/logits": float((shared_logits - copies_logits).abs().max()),
    }


def _max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def _compare(got: dict, ref: dict) -> dict:
    diffs: dict[str, float | bool] = {}
    for run in RUNS:
        diffs[f"{run}/same_tokens"] = got[run]["tokens"] == ref[run]["tokens"]
        diffs[f"{run}/same_finished"] = got[run]["finished"] == ref[run]["finished"]
        diffs[f"{run}/logp"] = _max_diff(got[run]["logp"], ref[run]["logp"])
    diffs["sequence_logprobs"] = _max_diff(got["sequence_logprobs"], ref["sequence_logprobs"])
    diffs["score_responses"] = _max_diff(got["score_responses"], ref["sequence_logprobs"])
    return {**diffs, **got["vision_once"], **got["lean"]}


def main() -> None:
    import torch

    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.models.tokenizer import tiny_tokenizer
    from vzero_nemo.parallel import all_gather_objects, destroy_parallel, initialize_parallel

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    torch.set_num_threads(1)
    state = initialize_parallel(ParallelConfig(backend="gloo"), seed=SEED)
    hf_dir = out / "hf_tiny"
    if state.rank == 0:
        _write_hf_checkpoint(hf_dir)
    torch.distributed.barrier()
    prompts = _prompts()
    ref = _run_layout(*LAYOUTS["ref"], hf_dir, prompts, stop_token=None)
    diffs: dict[str, dict] = {
        "ref": {
            "rows_stopped_early": sum(len(t) < MAX_NEW for t in ref["greedy_stop"]["tokens"]),
            "sampled_differs_from_greedy": ref["sampled"]["tokens"] != ref["greedy"]["tokens"],
            "greedy_mean_logp": float(torch.tensor(sum(ref["greedy"]["logp"], [])).mean()),
            "uniform_logp": -math.log(len(tiny_tokenizer())),
            "sequence_vs_sampling_logp": _max_diff(ref["sequence_logprobs"], ref["greedy"]["logp"]),
            "score_vs_sequence_logprobs": _max_diff(
                ref["score_responses"], ref["sequence_logprobs"]
            ),
            **ref["vision_once"],
            **ref["lean"],
        }
    }
    for name in ("tp2", "pp2"):
        got = _run_layout(*LAYOUTS[name], hf_dir, prompts, stop_token=ref["stop_token"])
        diffs[name] = _compare(got, ref)
    gathered = all_gather_objects(diffs, group="world")
    if state.rank == 0:
        merged = {"ref": diffs["ref"]}
        for name in ("tp2", "pp2"):
            per_rank = [d[name] for d in gathered]
            merged[name] = {
                key: (max if isinstance(per_rank[0][key], float) else all)(d[key] for d in per_rank)
                for key in per_rank[0]
            }
            merged[name]["ranks"] = len(per_rank)
        (out / "diffs.json").write_text(json.dumps(merged, indent=2))
    destroy_parallel()


if __name__ == "__main__":
    main()
