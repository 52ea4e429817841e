"""Worker for tests/distributed/test_parallel_layouts.py: one tiny model, every layout.

A Qwen2-style megatron-core GPT (local layer spec: RMSNorm, SwiGLU, GQA, QKV bias, RoPE,
untied embeddings) takes one training step on a fixed batch whose loss mask leaves a
different number of tokens in every sequence. The loss is summed over tokens and divided
by the global token count (megatron's `calculate_per_token_loss`), so it must not depend on
the layout.

    # one process: the reference (TP=PP=DP=1); writes reference.pt and a TP=1 dist-checkpoint
    python tests/distributed/_parallel_worker.py reference --out /tmp/par
    # two ranks (tests/distributed/_launch.py sets the torchrun variables): TP=2, PP=2,
    # PP=2 with VPP=2 and DP=2 in turn, each compared to the reference -> diffs.json
    python tests/distributed/_parallel_worker.py compare --out /tmp/par

Every layout starts from the reference's initial weights (copied shard by shard, by global
parameter name) and reports max |difference| of logits, loss, gradients and the weights
after one Adam step (with active gradient clipping); `ckpt_tp1_to_tp2` loads the reference's
TP=1 dist-checkpoint into a TP=2 model with other weights and compares every shard.
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
VOCAB, SEQ, BATCH, MICRO = 64, 16, 4, 2
NUM_LAYERS = 4
LR, CLIP = 1e-3, 0.05


# ------------------------------------------------------------------ model and data


def transformer_config(parallel: ParallelConfig):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(
        num_layers=NUM_LAYERS,
        hidden_size=32,
        ffn_hidden_size=48,
        num_attention_heads=4,
        num_query_groups=2,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        add_qkv_bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        use_cpu_initialization=True,
        gradient_accumulation_fusion=False,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        calculate_per_token_loss=True,
        tensor_model_parallel_size=parallel.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel.virtual_pipeline_model_parallel_size,
        pipeline_dtype=torch.float32,
    )


def build_chunks(parallel: ParallelConfig) -> list[torch.nn.Module]:
    """One GPTModel per (virtual) pipeline chunk of this rank."""
    from megatron.core import parallel_state as mpu
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    config = transformer_config(parallel)
    vpp = parallel.virtual_pipeline_model_parallel_size or 1
    chunks = []
    for vp_stage in range(vpp):
        stage = vp_stage if parallel.virtual_pipeline_model_parallel_size else None
        chunks.append(
            GPTModel(
                config=config,
                transformer_layer_spec=get_gpt_layer_local_spec(normalization="RMSNorm"),
                vocab_size=VOCAB,
                max_sequence_length=SEQ,
                pre_process=mpu.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
                post_process=mpu.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
                share_embeddings_and_output_weights=False,
                position_embedding_type="rope",
                vp_stage=stage,
            )
        )
    return chunks


def make_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
    loss_mask = torch.zeros(BATCH, SEQ)
    for row, start in enumerate((3, 6, 9, 12)):  # 13, 10, 7, 4 response tokens
        loss_mask[row, start:] = 1.0
    return {
        "tokens": tokens[:, :-1],
        "labels": tokens[:, 1:],
        "position_ids": torch.arange(SEQ).expand(BATCH, SEQ),
        "loss_mask": loss_mask,
    }


def microbatches(batch: dict[str, torch.Tensor], rows: range) -> list[dict[str, torch.Tensor]]:
    return [{k: v[i : i + MICRO] for k, v in batch.items()} for i in rows[::MICRO]]


def loss_func(loss_mask: torch.Tensor, output: torch.Tensor, non_loss_data: bool = False):
    if non_loss_data:  # forward-only logits collection
        return output.detach().clone()
    loss_sum = (output.float() * loss_mask).sum()
    num_tokens = loss_mask.sum().to(torch.int)
    return loss_sum, num_tokens, {"loss": torch.stack([loss_sum.detach(), num_tokens.float()])}


def forward_step(data_iterator, model, *, with_labels: bool = True):
    mb = next(data_iterator)
    labels = mb["labels"] if with_labels else None
    output = model(mb["tokens"], mb["position_ids"], attention_mask=None, labels=labels)
    return output, partial(loss_func, mb["loss_mask"])


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
        match = re.match(r"(decoder\.layers\.\d+)\.(.*)", name)
        if match:
            name = f"decoder.layers.{layer_index[match.group(1)]}.{match.group(2)}"
        out[name] = param
    return out


def shard_of(full: torch.Tensor, name: str, param: torch.nn.Parameter) -> torch.Tensor:
    """This TP rank's slice of a full (single-process) tensor, in megatron's layout."""
    state = get_parallel_state()
    if not getattr(param, "tensor_model_parallel", False) or state.tp_size == 1:
        return full
    dim = param.partition_dim
    if name.endswith("mlp.linear_fc1.weight"):  # SwiGLU: [gate; up], each split over TP
        gate, up = full.chunk(2, dim=dim)
        return torch.cat(
            [
                gate.chunk(state.tp_size, dim)[state.tp_rank],
                up.chunk(state.tp_size, dim)[state.tp_rank],
            ],
            dim,
        )
    return full.chunk(state.tp_size, dim=dim)[state.tp_rank]


def load_full_weights(chunks: list[torch.nn.Module], full: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for chunk in chunks:
            for name, param in global_named_parameters(chunk).items():
                param.copy_(shard_of(full[name], name, param))


def max_diff_vs_full(
    chunks: list[torch.nn.Module], full: dict[str, torch.Tensor], attr: str = "data"
) -> float:
    worst = 0.0
    for chunk in chunks:
        for name, param in global_named_parameters(chunk).items():
            mine = getattr(param, attr)
            worst = max(worst, (mine - shard_of(full[name], name, param)).abs().max().item())
    return worst


# ------------------------------------------------------------------ one training step


def train_step(parallel: ParallelConfig, chunks, batch, rows: range) -> dict[str, Any]:
    """Wrap in MCore DDP, run the pipeline schedule once, take one Adam step."""
    from megatron.core.distributed import DistributedDataParallel as DDP
    from megatron.core.distributed import DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.pipeline_parallel import get_forward_backward_func

    config = chunks[0].config
    config.finalize_model_grads_func = finalize_model_grads
    mbs = microbatches(batch, rows)
    with cpu_compat.cuda_redirect():
        ddp_chunks = [
            DDP(config, DistributedDataParallelConfig(), chunk, disable_bucketing=i > 0)
            for i, chunk in enumerate(chunks)
        ]
        optimizer = get_megatron_optimizer(
            OptimizerConfig(optimizer="adam", lr=LR, weight_decay=0.0, clip_grad=CLIP),
            ddp_chunks,
        )
        for chunk in ddp_chunks:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        iterators = [iter(mbs) for _ in ddp_chunks]
        losses = get_forward_backward_func()(
            forward_step_func=forward_step,
            data_iterator=iterators if len(iterators) > 1 else iterators[0],
            model=ddp_chunks,
            num_microbatches=len(mbs),
            seq_length=SEQ,
            micro_batch_size=MICRO,
            forward_only=False,
        )
        grads = {
            name: param.main_grad.detach().clone()
            for chunk in ddp_chunks
            for name, param in global_named_parameters(chunk).items()
        }
        update_ok, grad_norm, _ = optimizer.step()
    assert update_ok
    totals = torch.stack([m["loss"] for m in losses]).sum(0) if losses else torch.zeros(2)
    totals = all_reduce_sum(totals, "dp")
    loss = (totals[0] / totals[1]).item() if losses else None
    return {"loss": loss, "grads": grads, "grad_norm": grad_norm}


def collect_logits(chunks, batch, rows: range) -> torch.Tensor | None:
    """Logits [rows, SEQ, VOCAB/TP] via the schedule's forward-only path (last stage only)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    mbs = microbatches(batch, rows)
    with torch.no_grad(), cpu_compat.cuda_redirect():
        iterators = [iter(mbs) for _ in chunks]
        out = get_forward_backward_func()(
            forward_step_func=partial(forward_step, with_labels=False),
            data_iterator=iterators if len(iterators) > 1 else iterators[0],
            model=chunks,
            num_microbatches=len(mbs),
            seq_length=SEQ,
            micro_batch_size=MICRO,
            forward_only=True,
            collect_non_loss_data=True,
        )
    return torch.cat(out, dim=0) if out else None


# ------------------------------------------------------------------ entry points


def reference(out: Path) -> None:
    from megatron.core import dist_checkpointing

    parallel = ParallelConfig()
    initialize_parallel(parallel, SEED)
    chunks = build_chunks(parallel)
    batch = make_batch()
    weights0 = {n: p.detach().clone() for n, p in global_named_parameters(chunks[0]).items()}
    (out / "ckpt_tp1").mkdir()
    with cpu_compat.cuda_redirect():
        dist_checkpointing.save(chunks[0].sharded_state_dict(), str(out / "ckpt_tp1"))
    logits = collect_logits(chunks, batch, range(BATCH))
    step = train_step(parallel, chunks, batch, range(BATCH))
    weights1 = {n: p.detach().clone() for n, p in global_named_parameters(chunks[0]).items()}
    # Sizes of what the layouts are compared on, so a vacuous comparison shows up.
    (out / "reference_scale.json").write_text(
        json.dumps(
            {
                "loss": step["loss"],
                "max_abs_grad": max(g.abs().max().item() for g in step["grads"].values()),
                "grad_norm": step["grad_norm"],
                "clip_grad": CLIP,
                "max_abs_adam_update": max(
                    (weights1[n] - weights0[n]).abs().max().item() for n in weights0
                ),
                "max_abs_logit": logits.abs().max().item(),
            }
        )
    )
    torch.save(
        {"weights0": weights0, "weights1": weights1, "logits": logits, **step},
        out / "reference.pt",
    )
    destroy_parallel()


def compare_layout(parallel: ParallelConfig, ref: dict[str, Any]) -> dict[str, float]:
    initialize_parallel(parallel, SEED + 1)  # other init: weights must come from the copy
    state = get_parallel_state()
    chunks = build_chunks(parallel)
    load_full_weights(chunks, ref["weights0"])
    batch = make_batch()
    per_dp = BATCH // state.dp_size
    rows = range(state.dp_rank * per_dp, (state.dp_rank + 1) * per_dp)
    diffs = {"logits": 0.0, "loss": 0.0}
    logits = collect_logits(chunks, batch, rows)
    if logits is not None:
        ref_logits = ref["logits"][rows.start : rows.stop]
        ref_logits = ref_logits.chunk(state.tp_size, dim=-1)[state.tp_rank]
        diffs["logits"] = (logits - ref_logits).abs().max().item()
    step = train_step(parallel, chunks, batch, rows)
    if step["loss"] is not None:
        diffs["loss"] = abs(step["loss"] - ref["loss"])
    diffs["grads"] = max(
        (g - shard_of(ref["grads"][n], n, p)).abs().max().item()
        for chunk in chunks
        for n, p in global_named_parameters(chunk).items()
        for g in [step["grads"][n]]
    )
    diffs["grad_norm"] = abs(step["grad_norm"] - ref["grad_norm"])
    diffs["adam_weights"] = max_diff_vs_full(chunks, ref["weights1"])
    result = {k: all_reduce_max(v, "world") for k, v in diffs.items()}
    destroy_parallel(keep_process_group=True)
    return result


def compare_checkpoint(out: Path, ref: dict[str, Any]) -> dict[str, float]:
    from megatron.core import dist_checkpointing

    parallel = ParallelConfig(tensor_model_parallel_size=2)
    initialize_parallel(parallel, SEED + 2)
    chunks = build_chunks(parallel)
    before = max_diff_vs_full(chunks, ref["weights0"])
    with cpu_compat.cuda_redirect():
        loaded = dist_checkpointing.load(chunks[0].sharded_state_dict(), str(out / "ckpt_tp1"))
    chunks[0].load_state_dict(loaded)
    result = {
        "weights_before_load": all_reduce_max(before, "world"),
        "weights": all_reduce_max(max_diff_vs_full(chunks, ref["weights0"]), "world"),
    }
    destroy_parallel(keep_process_group=True)
    return result


LAYOUTS = {
    "tp2": ParallelConfig(tensor_model_parallel_size=2),
    "pp2": ParallelConfig(pipeline_model_parallel_size=2),
    "pp2_vpp2": ParallelConfig(
        pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2
    ),
    "dp2": ParallelConfig(),
}


def compare(out: Path) -> None:
    ref = torch.load(out / "reference.pt", weights_only=False)
    results, seconds = {}, {}
    for name, layout in LAYOUTS.items():
        start = time.perf_counter()
        results[name] = compare_layout(layout, ref)
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    results["ckpt_tp1_to_tp2"] = compare_checkpoint(out, ref)
    seconds["ckpt_tp1_to_tp2"] = time.perf_counter() - start
    results["seconds"] = seconds
    if torch.distributed.get_rank() == 0:
        (out / "diffs.json").write_text(json.dumps(results, indent=2))
    destroy_parallel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["reference", "compare"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hang-dump-s", type=float, default=240.0)
    cli = parser.parse_args()
    # A hang prints every thread's stack (in the rank's log) before the launcher kills it.
    faulthandler.dump_traceback_later(cli.hang_dump_s, exit=True)
    torch.set_num_threads(1)
    {"reference": reference, "compare": compare}[cli.mode](cli.out)
