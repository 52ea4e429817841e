"""Worker of tests/widths/test_published_widths.py: one published-width checkpoint.

    # one process: transformers' own forward -> reference_logits.pt, then the TP=1 layout
    python tests/widths/_widths_worker.py reference --hf DIR --out OUT --layouts tp1
    # two ranks (tests/distributed/_launch.py sets the torchrun variables)
    python tests/widths/_widths_worker.py layouts --hf DIR --out OUT --layouts tp2,pp2
    # one process: the exported folder through from_pretrained, same forward
    python tests/widths/_widths_worker.py check-export --hf EXPORT --out OUT

A layout builds the policy with `model.size=auto` (dimensions from DIR/config.json) in bf16
without random init, imports DIR through `hf_convert.import_hf_weights` (Megatron-Bridge, one
tensor at a time), runs megatron-core's forward-only schedule on the prompt batch and compares
this rank's vocabulary slice of the logits with transformers' on real tokens; it then (unless
left out of `--export`) exports with `hf_convert.save_hf_checkpoint` and compares the export
with DIR tensor by tensor. Peak
RSS is read from the kernel (VmHWM, reset right before the model is built), so the import's
peak is measured against this rank's parameter bytes and the checkpoint's largest shard.
Every rank writes `result_<layout>_rank<r>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from functools import partial
from pathlib import Path

import torch

LAYOUTS = {"tp1": (1, 1), "tp2": (2, 1), "pp2": (1, 2)}
MICRO = 2
SEED = 1234
GIB = 2**30
TEXTS = (
    "You are player 2 of 4, civilian. Player 1 said: red cube. Describe one object. "
    "Use <answer></answer>.",
    "Who is the spy? Player 1 said: large rubber sphere. Player 2 said: small cyan "
    "cylinder. Player 3 said: the blue cube left of the sphere. Answer 1-4 or N/A.",
)
# (height, width) in pixels: multiples of the 28-px merged token, larger than one 112-px
# attention window so windowed and full-attention blocks differ.
IMAGE_HW = ((168, 224), (140, 252))
CONTROLS = (
    "eager_attention",  # transformers' own bf16 noise: another attention kernel, same maths
    "one_d_positions",  # the bugs: text RoPE positions for image tokens,
    "mrope_sections_permuted",  # the M-RoPE frequency split (16, 24, 24) permuted,
    "window_and_full_blocks_swapped",  # windowed and full-attention vision blocks swapped
)


def model_cfg(hf_dir: Path):
    from vzero_nemo.config import ModelConfig

    return ModelConfig(
        size="auto",
        hf_path=str(hf_dir),
        params_dtype="bf16",
        seq_length=512,
        min_pixels=28 * 28 * 16,
        max_pixels=28 * 28 * 64,
    )


def prompt_batch(hf_dir: Path):
    """Two image + text prompts of different lengths (left padded), rendered with the
    checkpoint's tokenizer and chat template."""
    import numpy as np

    from vzero_nemo.models.batch import collate_prompts
    from vzero_nemo.models.chat import render_chat
    from vzero_nemo.models.tokenizer import load_tokenizer

    cfg = model_cfg(hf_dir)
    tok = load_tokenizer(cfg)
    rng = np.random.default_rng(0)
    prompts = []
    for text, hw in zip(TEXTS, IMAGE_HW):
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        prompts.append(render_chat(messages, tok, image, cfg))
    return collate_prompts(prompts, tok, cfg), tok


def rss_gib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError(f"{field} missing from /proc/self/status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def hf_logits(hf_dir: Path, control: str | None = None) -> torch.Tensor:
    """transformers' own forward of the checkpoint on the prompt batch, (B, T, V) bf16;
    `control` runs it with one architecture field deliberately wrong instead."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    batch, tok = prompt_batch(hf_dir)
    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    if control == "mrope_sections_permuted":
        t, h, w = config.text_config.rope_parameters["mrope_section"]
        config.text_config.rope_parameters["mrope_section"] = [h, t, w]
    elif control == "window_and_full_blocks_swapped":
        full = set(config.vision_config.fullatt_block_indexes)
        depth = config.vision_config.depth
        config.vision_config.fullatt_block_indexes = [i for i in range(depth) if i not in full]
    elif control not in (None, "eager_attention", "one_d_positions"):
        raise ValueError(f"unknown control {control!r}")
    attention = "eager" if control == "eager_attention" else "sdpa"
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        hf_dir, config=config, local_files_only=True, attn_implementation=attention
    )
    hf.eval()
    image_tokens = (batch.input_ids == tok.image_pad_id).int()
    with torch.no_grad():
        logits = hf(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            pixel_values=batch.pixel_values.to(hf.dtype),
            image_grid_thw=batch.image_grid_thw,
            # without mm_token_type_ids transformers silently falls back to 1-D positions
            mm_token_type_ids=None if control == "one_d_positions" else image_tokens,
        ).logits
    return logits


def _forward_step(data_iterator, model):
    mb = next(data_iterator)
    logits = model(
        mb.input_ids,
        mb.position_ids,
        mb.causal_mask(),
        pixel_values=mb.pixel_values.to(torch.bfloat16),
        image_grid_thw=mb.image_grid_thw,
    )
    return logits, partial(_keep_logits)


def _keep_logits(logits, non_loss_data: bool = False):
    assert non_loss_data
    return logits.float()


def _param_bytes(model: torch.nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def run_layout(name: str, hf_dir: Path, out: Path, export: bool, keep_export: bool) -> None:
    from megatron.core import parallel_state as mpu
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.hf_files import checkpoint_bytes
    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.parallel import cpu_compat, seed_all

    tp, pp = LAYOUTS[name]
    mpu.destroy_model_parallel()
    mpu.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    seed_all(SEED)
    cfg = model_cfg(hf_dir)
    batch, _ = prompt_batch(hf_dir)
    parallel = ParallelConfig(
        backend="gloo", tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp
    )
    baseline = rss_gib("VmRSS")
    reset_peak_rss()
    model = build_policy(cfg, parallel, initialize=False)
    hf_convert.import_hf_weights([model], cfg)
    import_peak = rss_gib("VmHWM")
    model.eval()
    micro = [batch.rows(i, i + MICRO) for i in range(0, batch.input_ids.shape[0], MICRO)]
    with torch.no_grad(), cpu_compat.cuda_redirect():
        outputs = get_forward_backward_func()(
            forward_step_func=_forward_step,
            data_iterator=iter(micro),
            model=[model],
            num_microbatches=len(micro),
            seq_length=batch.input_ids.shape[1],
            micro_batch_size=MICRO,
            forward_only=True,
            collect_non_loss_data=True,
        )
    result: dict = {
        "layout": name,
        "rank": torch.distributed.get_rank(),
        "rss_baseline_gib": baseline,
        "import_peak_gib": import_peak,
        "param_gib": _param_bytes(model) / GIB,
        "checkpoint": {k: v / GIB for k, v in checkpoint_bytes(hf_dir).items()},
    }
    if mpu.is_pipeline_last_stage():
        result.update(_compare_logits(torch.cat(outputs), batch, out, tp))
    if export:
        result["export"] = _export_and_compare(
            model, cfg, hf_dir, out / f"export_{name}", keep_export
        )
    rank = torch.distributed.get_rank()
    (out / f"result_{name}_rank{rank}.json").write_text(json.dumps(result, indent=2))
    torch.distributed.barrier()
    del model


def _export_and_compare(model, cfg, hf_dir: Path, export: Path, keep: bool) -> dict | None:
    """Export through hf_convert (collective); rank 0 compares with the original."""
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.hf_files import compare_checkpoints

    hf_convert.save_hf_checkpoint([model], cfg, export, max_shard_bytes=GIB)
    if torch.distributed.get_rank() != 0:
        return None
    comparison = compare_checkpoints(hf_dir, export)
    result = {
        "compared": comparison.compared,
        "mismatched": comparison.mismatched,
        "only_in_original": comparison.only_in_a,
        "only_in_export": comparison.only_in_b,
        "index": (export / "model.safetensors.index.json").is_file(),
    }
    if not keep:
        shutil.rmtree(export)
    return result


def _compare_logits(logits: torch.Tensor, batch, out: Path, tp: int) -> dict:
    """Max |ours - transformers'| over real positions of this rank's vocabulary slice."""
    from megatron.core import parallel_state as mpu

    ref = torch.load(out / "reference_logits.pt")
    width = logits.shape[-1]
    start = mpu.get_tensor_model_parallel_rank() * width
    ref = ref[..., start : start + width].float()
    real = batch.attention_mask
    diff = (logits - ref)[real].abs()
    return {
        "vocab_slice": [start, start + width],
        "tokens": int(real.sum()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_logit": float(ref[real].abs().max()),
        "argmax_agree": float((logits.argmax(-1) == ref.argmax(-1))[real].float().mean()),
    }


def check_export(export: Path, out: Path) -> None:
    """transformers loads the export (no missing / unexpected keys) and its forward equals
    the forward of the original checkpoint bit for bit."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    _, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        export, local_files_only=True, output_loading_info=True
    )
    logits = hf_logits(export)
    ref = torch.load(out / "reference_logits.pt")
    result = {
        "missing_keys": sorted(info["missing_keys"]),
        "unexpected_keys": sorted(info["unexpected_keys"]),
        "mismatched_keys": sorted(str(k) for k in info["mismatched_keys"]),
        "logits_identical": bool(torch.equal(logits, ref)),
    }
    (out / "result_check_export.json").write_text(json.dumps(result, indent=2))


def reference(hf_dir: Path, out: Path) -> None:
    """transformers' logits -> reference_logits.pt, and how far two plausible conversion bugs
    (simulated in transformers' own model) move them: the tolerance must sit well below."""
    ref = hf_logits(hf_dir)
    torch.save(ref, out / "reference_logits.pt")
    batch, _ = prompt_batch(hf_dir)
    real = batch.attention_mask
    controls = {}
    for control in CONTROLS:
        diff = (hf_logits(hf_dir, control).float() - ref.float())[real].abs()
        controls[control] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    result = {"max_abs_logit": float(ref.float()[real].abs().max()), "controls": controls}
    (out / "result_reference.json").write_text(json.dumps(result, indent=2))


def main() -> None:
    from vzero_nemo.config import ParallelConfig
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("reference", "layouts", "check-export"))
    parser.add_argument("--hf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--layouts", default="")
    parser.add_argument("--export", default=None, help="layouts that export (default: all)")
    parser.add_argument("--keep-export", default="", help="layout whose export is kept")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.mode == "check-export":
        check_export(args.hf, args.out)
        return
    if args.mode == "reference":
        reference(args.hf, args.out)
    initialize_parallel(ParallelConfig(backend="gloo"), seed=SEED)
    layouts = [name for name in args.layouts.split(",") if name]
    exports = layouts if args.export is None else args.export.split(",")
    for name in layouts:
        run_layout(name, args.hf, args.out, name in exports, name == args.keep_export)
    destroy_parallel()


if __name__ == "__main__":
    main()
