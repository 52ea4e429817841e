"""Worker for tests/distributed/test_parallel_layouts.py: tiny models, every layout.

Each tiny model of `_parallel_models.py` (a megatron-core GPT and Megatron-Bridge's
Qwen2.5-VL) takes one training step on a fixed batch. The loss is summed over tokens and
divided by the global token count (megatron's `calculate_per_token_loss`), so it must not
depend on the layout.

    # one process: the reference (TP=PP=DP=1) -> reference_<model>.pt, a TP=1 checkpoint
    python tests/distributed/_parallel_worker.py reference --out /tmp/par
    # two ranks (tests/distributed/_launch.py sets the torchrun variables): TP=2, PP=2,
    # PP=2 x VPP=2 (GPT) and DP=2 in turn, each compared to the reference -> diffs_<model>.json
    python tests/distributed/_parallel_worker.py compare --out /tmp/par

Every layout starts from the reference's initial weights (copied shard by shard, by global
parameter name) and reports max |difference| of logits, loss, gradients and the weights
after one Adam step (with active gradient clipping); `ckpt_tp1_to_tp2` loads the reference's
TP=1 dist-checkpoint into a TP=2 model with other weights and compares every shard. The
layouts run one after another in the same two processes (the process group is kept, the
megatron groups are rebuilt), which saves a launch per layout.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from _parallel_models import BATCH, MICRO, MODELS, SEQ, TinyModel

from vzero_nemo.config import ParallelConfig
from vzero_nemo.parallel import (
    all_reduce_max,
    all_reduce_sum,
    cpu_compat,
    destroy_parallel,
    get_parallel_state,
    initialize_parallel,
)

SEED = 1234
LR, CLIP = 1e-3, 0.05
# The first Adam step moves each weight by lr * g / (|g| + eps): its sensitivity to a
# gradient difference is at most lr / eps, so eps = 1e-4 bounds a 1e-7 gradient difference
# to 1e-6 in the weights (eps = 1e-8 would let float noise in a near-zero gradient flip a
# weight by up to 2 * lr).
ADAM_EPS = 1e-4
LAYOUTS = {
    "tp2": ParallelConfig(tensor_model_parallel_size=2),
    "pp2": ParallelConfig(pipeline_model_parallel_size=2),
    "pp2_vpp2": ParallelConfig(
        pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2
    ),
    "dp2": ParallelConfig(),
}
MODEL_LAYOUTS = {"gpt": list(LAYOUTS), "qwen25vl": ["tp2", "pp2", "dp2"]}


def build_chunks(model: TinyModel, parallel: ParallelConfig) -> list[torch.nn.Module]:
    """One model per (virtual) pipeline chunk of this rank."""
    from megatron.core import parallel_state as mpu

    vpp = parallel.virtual_pipeline_model_parallel_size
    stages = list(range(vpp)) if vpp else [None]
    return [
        model.build(
            parallel,
            mpu.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
            mpu.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
            stage,
        )
        for stage in stages
    ]


def microbatches(batch: dict[str, torch.Tensor], rows: range) -> list[dict[str, torch.Tensor]]:
    return [{k: v[i : i + MICRO] for k, v in batch.items()} for i in rows[::MICRO]]


def loss_func(loss_mask: torch.Tensor, output: torch.Tensor, non_loss_data: bool = False):
    if non_loss_data:  # forward-only logits collection
        return output.detach().clone()
    loss_sum = (output.float() * loss_mask).sum()
    num_tokens = loss_mask.sum().to(torch.int)
    return loss_sum, num_tokens, {"loss": torch.stack([loss_sum.detach(), num_tokens.float()])}


def forward_step(model: TinyModel, data_iterator, chunk, *, with_labels: bool = True):
    mb = next(data_iterator)
    return model.forward(chunk, mb, with_labels), partial(loss_func, mb["loss_mask"])


# ------------------------------------------------------------------ names and shards


def global_named_parameters(chunk: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Parameters keyed by their name in the single-process model (global layer index)."""
    from megatron.core.transformer.transformer_layer import TransformerLayer

    module = getattr(chunk, "module", chunk)
    layer_index = {
        name: mod.layer_number - 1
        for name, mod in module.named_modules()
        if isinstance(mod, TransformerLayer)
    }
    out = {}
    for name, param in module.named_parameters():
        match = re.match(r"((.*)decoder\.layers\.\d+)\.(.*)", name)
        if match:
            name = f"{match[2]}decoder.layers.{layer_index[match[1]]}.{match[3]}"
        out[name] = param
    return out


def shard_of(full: torch.Tensor, name: str, param: torch.nn.Parameter) -> torch.Tensor:
    """This TP rank's slice of a full (single-process) tensor, in megatron's layout."""
    state = get_parallel_state()
    if not getattr(param, "tensor_model_parallel", False) or state.tp_size == 1:
        return full
    dim, tp, rank = param.partition_dim, state.tp_size, state.tp_rank
    if name.endswith("mlp.linear_fc1.weight"):  # SwiGLU: [gate; up], each split over TP
        gate, up = full.chunk(2, dim=dim)
        return torch.cat([gate.chunk(tp, dim)[rank], up.chunk(tp, dim)[rank]], dim)
    return full.chunk(tp, dim=dim)[rank]


def full_weights(chunks: list[torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for c in chunks for n, p in global_named_parameters(c).items()}


def load_full_weights(chunks: list[torch.nn.Module], full: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for chunk in chunks:
            for name, param in global_named_parameters(chunk).items():
                param.copy_(shard_of(full[name], name, param))


def max_diff_vs_full(chunks: list[torch.nn.Module], full: dict[str, torch.Tensor]) -> float:
    return max(
        (param.detach() - shard_of(full[name], name, param)).abs().max().item()
        for chunk in chunks
        for name, param in global_named_parameters(chunk).items()
    )


# ------------------------------------------------------------------ schedule runs


def _run_schedule(model: TinyModel, chunks, mbs, *, forward_only: bool, with_labels: bool):
    from megatron.core.pipeline_parallel import get_forward_backward_func

    iterators = [iter(mbs) for _ in chunks]
    return get_forward_backward_func()(
        # The schedule runs inside cuda_redirect(); the model's forward runs outside it.
        forward_step_func=cpu_compat.outside_cuda_redirect(
            partial(forward_step, model, with_labels=with_labels)
        ),
        data_iterator=iterators if len(iterators) > 1 else iterators[0],
        model=chunks,
        num_microbatches=len(mbs),
        seq_length=SEQ,
        micro_batch_size=MICRO,
        forward_only=forward_only,
        collect_non_loss_data=not with_labels,
    )


def collect_logits(model: TinyModel, chunks, batch, rows: range) -> torch.Tensor | None:
    """Logits [rows, SEQ, VOCAB/TP] from the forward-only schedule (last stage; else None)."""
    with torch.no_grad(), cpu_compat.cuda_redirect():
        out = _run_schedule(
            model, chunks, microbatches(batch, rows), forward_only=True, with_labels=False
        )
    return torch.cat(out, dim=0) if out else None


def train_step(model: TinyModel, chunks, batch, rows: range) -> dict[str, Any]:
    """Wrap in MCore DDP, run the schedule once, take one Adam step (clipped)."""
    from megatron.core.distributed import DistributedDataParallel as DDP
    from megatron.core.distributed import DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    config = chunks[0].config
    config.finalize_model_grads_func = finalize_model_grads
    with cpu_compat.cuda_redirect():
        ddp_chunks = [
            DDP(config, DistributedDataParallelConfig(), chunk, disable_bucketing=i > 0)
            for i, chunk in enumerate(chunks)
        ]
        optimizer = get_megatron_optimizer(
            OptimizerConfig(
                optimizer="adam", lr=LR, adam_eps=ADAM_EPS, weight_decay=0.0, clip_grad=CLIP
            ),
            ddp_chunks,
        )
        for chunk in ddp_chunks:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        losses = _run_schedule(
            model, ddp_chunks, microbatches(batch, rows), forward_only=False, with_labels=True
        )
        grads = {
            name: param.main_grad.detach().clone()
            for chunk in ddp_chunks
            for name, param in global_named_parameters(chunk).items()
        }
        update_ok, grad_norm, _ = optimizer.step()
    assert update_ok
    loss = None
    if losses:  # last pipeline stage: global token-weighted mean over the DP group
        totals = all_reduce_sum(torch.stack([m["loss"] for m in losses]).sum(0), "dp")
        loss = (totals[0] / totals[1]).item()
    return {"loss": loss, "grads": grads, "grad_norm": grad_norm}


# ------------------------------------------------------------------ entry points


def reference(out: Path, name: str) -> None:
    from megatron.core import dist_checkpointing

    model, parallel = MODELS[name], ParallelConfig()
    initialize_parallel(parallel, SEED)
    chunks = build_chunks(model, parallel)
    batch = model.make_batch()
    weights0 = full_weights(chunks)
    (out / f"ckpt_{name}_tp1").mkdir()
    with cpu_compat.cuda_redirect():
        dist_checkpointing.save(chunks[0].sharded_state_dict(), str(out / f"ckpt_{name}_tp1"))
    logits = collect_logits(model, chunks, batch, range(BATCH))
    step = train_step(model, chunks, batch, range(BATCH))
    weights1 = full_weights(chunks)
    # Sizes of what the layouts are compared on, so a vacuous comparison shows up.
    scale = {
        "loss": step["loss"],
        "max_abs_grad": max(g.abs().max().item() for g in step["grads"].values()),
        "grad_norm": step["grad_norm"],
        "clip_grad": CLIP,
        "max_abs_adam_update": max(
            (weights1[n] - weights0[n]).abs().max().item() for n in weights0
        ),
        "max_abs_logit": logits.abs().max().item(),
    }
    (out / f"reference_{name}.json").write_text(json.dumps(scale, indent=2))
    torch.save(
        {"weights0": weights0, "weights1": weights1, "logits": logits, **step},
        out / f"reference_{name}.pt",
    )
    destroy_parallel()


def compare_layout(model: TinyModel, parallel: ParallelConfig, ref: dict[str, Any]) -> dict:
    state = initialize_parallel(parallel, SEED)
    chunks = build_chunks(model, parallel)
    # CPU initialisation draws full tensors from the seeded stream and slices them, so TP and
    # DP layouts start from the reference weights; PP stages restart the stream (not equal).
    init_diff = max_diff_vs_full(chunks, ref["weights0"])
    load_full_weights(chunks, ref["weights0"])
    batch = model.make_batch()
    per_dp = BATCH // state.dp_size
    rows = range(state.dp_rank * per_dp, (state.dp_rank + 1) * per_dp)
    diffs = {"init_weights": init_diff, "logits": 0.0, "loss": 0.0}
    logits = collect_logits(model, chunks, batch, rows)
    if logits is not None:
        ref_logits = ref["logits"][rows.start : rows.stop]
        ref_logits = ref_logits.chunk(state.tp_size, dim=-1)[state.tp_rank]
        diffs["logits"] = (logits - ref_logits).abs().max().item()
    step = train_step(model, chunks, batch, rows)
    if step["loss"] is not None:
        diffs["loss"] = abs(step["loss"] - ref["loss"])
    diffs["grads"] = max(
        (step["grads"][n] - shard_of(ref["grads"][n], n, p)).abs().max().item()
        for chunk in chunks
        for n, p in global_named_parameters(chunk).items()
    )
    diffs["grad_norm"] = abs(step["grad_norm"] - ref["grad_norm"])
    diffs["adam_weights"] = max_diff_vs_full(chunks, ref["weights1"])
    result = {k: all_reduce_max(v, "world") for k, v in diffs.items()}
    destroy_parallel(keep_process_group=True)
    return result


def compare_checkpoint(model: TinyModel, ckpt_dir: Path, ref: dict[str, Any]) -> dict:
    from megatron.core import dist_checkpointing

    initialize_parallel(ParallelConfig(tensor_model_parallel_size=2), SEED + 2)
    chunks = build_chunks(model, ParallelConfig(tensor_model_parallel_size=2))
    before = max_diff_vs_full(chunks, ref["weights0"])
    with cpu_compat.cuda_redirect():
        loaded = dist_checkpointing.load(chunks[0].sharded_state_dict(), str(ckpt_dir))
    chunks[0].load_state_dict(loaded)
    result = {
        "weights_before_load": all_reduce_max(before, "world"),
        "weights": all_reduce_max(max_diff_vs_full(chunks, ref["weights0"]), "world"),
    }
    destroy_parallel(keep_process_group=True)
    return result


def compare(out: Path, name: str) -> None:
    model = MODELS[name]
    ref = torch.load(out / f"reference_{name}.pt", weights_only=False)
    results, seconds = {}, {}
    for layout in MODEL_LAYOUTS[name]:
        start = time.perf_counter()
        results[layout] = compare_layout(model, LAYOUTS[layout], ref)
        seconds[layout] = time.perf_counter() - start
    start = time.perf_counter()
    results["ckpt_tp1_to_tp2"] = compare_checkpoint(model, out / f"ckpt_{name}_tp1", ref)
    seconds["ckpt_tp1_to_tp2"] = time.perf_counter() - start
    results["seconds"] = seconds
    if torch.distributed.get_rank() == 0:
        (out / f"diffs_{name}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["reference", "compare"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--hang-dump-s", type=float, default=240.0)
    cli = parser.parse_args()
    # A hang prints every thread's stack (in the rank's log) before the launcher kills it.
    faulthandler.dump_traceback_later(cli.hang_dump_s, exit=True)
    torch.set_num_threads(1)
    for model_name in cli.models:
        {"reference": reference, "compare": compare}[cli.mode](cli.out, model_name)
    if cli.mode == "compare":
        destroy_parallel()
