"""The model-side machinery of a step: DDP + megatron-core optimizer, LR schedule, and
forward/backward through megatron-core's pipeline schedule with TP/PP/DP.

Loss normalisation is megatron's per-token mode (`calculate_per_token_loss=True`): each
micro-batch's loss function returns (sum of its loss units, number of units, metrics); the
schedule does not divide, DDP does not average, and `finalize_model_grads` divides every
gradient by the units summed over all micro-batches and DP ranks. So the gradient is that of
(sum over the global batch) / (global count), whatever the DP size and micro-batching.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from vzero_nemo.config import VZeroConfig
from vzero_nemo.parallel import cpu_compat
from vzero_nemo.parallel.groups import all_reduce_sum
from vzero_nemo.profiling import region
from vzero_nemo.training.batching import MicroBatch

LossFn = Callable[[MicroBatch, torch.Tensor], tuple[torch.Tensor, torch.Tensor, dict]]


def compat_scope() -> contextlib.AbstractContextManager:
    """CUDA -> CPU redirection around megatron calls that hard-code CUDA (CPU only)."""
    return cpu_compat.cuda_redirect() if cpu_compat.is_installed() else contextlib.nullcontext()


def wrap_ddp(model, cfg: VZeroConfig):
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=False,
        use_distributed_optimizer=cfg.parallel.use_distributed_optimizer,
    )
    with compat_scope():
        return DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)


@dataclass(frozen=True, slots=True)
class LRSchedule:
    """Learning-rate schedule over optimizer steps: linear warmup, then cosine or constant."""

    lr: float
    min_lr: float
    warmup_fraction: float
    total_steps: int
    style: str = "cosine"

    @classmethod
    def self_play(cls, cfg: VZeroConfig) -> LRSchedule:
        t = cfg.train  # the schedule counts optimizer steps, not iterations
        total = t.iterations * t.steps_per_iteration
        return cls(t.lr, t.min_lr, t.warmup_fraction, total, t.lr_schedule)

    @classmethod
    def pretraining(cls, cfg: VZeroConfig) -> LRSchedule:
        p = cfg.pretrain
        return cls(p.lr, 0.0, p.warmup_fraction, p.steps, "cosine")


def build_optimizer(chunks: Sequence[Any], cfg: VZeroConfig, schedule: LRSchedule):
    """megatron-core AdamW (decoupled weight decay) + `schedule`; betas, weight decay and the
    gradient clip come from `cfg.train`."""
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    t = cfg.train
    bf16 = cfg.model.params_dtype == "bf16"
    opt_config = OptimizerConfig(
        optimizer="adam",
        lr=schedule.lr,
        min_lr=schedule.min_lr,
        weight_decay=t.weight_decay,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_eps=t.adam_eps,
        clip_grad=t.grad_clip,
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        use_distributed_optimizer=cfg.parallel.use_distributed_optimizer,
    )
    with compat_scope():
        optimizer = get_megatron_optimizer(opt_config, list(chunks))
    total = schedule.total_steps
    warmup = int(round(schedule.warmup_fraction * total))
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=0.0 if warmup > 0 else schedule.lr,
        max_lr=schedule.lr,
        min_lr=schedule.min_lr,
        lr_warmup_steps=warmup,
        lr_decay_steps=total,
        lr_decay_style="cosine" if schedule.style == "cosine" else "constant",
        start_wd=t.weight_decay,
        end_wd=t.weight_decay,
        wd_incr_steps=total,
        wd_incr_style="constant",
    )
    return optimizer, scheduler


def configure_model_config(chunks: Sequence[Any], optimizer) -> None:
    """Hook the per-token loss mode and the grad finalisation into the model config."""
    from megatron.core.distributed import finalize_model_grads

    config = chunks[0].config
    config.calculate_per_token_loss = True
    config.finalize_model_grads_func = finalize_model_grads
    config.grad_scale_func = optimizer.scale_loss
    if len(chunks) == 1:
        config.no_sync_func = chunks[0].no_sync


@dataclass(slots=True)
class ScheduleResult:
    metrics: list[dict[str, torch.Tensor]]
    """The loss functions' metric dicts (last pipeline stage only; empty elsewhere)."""


def forward_micro_batch(model, mb: MicroBatch) -> torch.Tensor:
    """The model on one micro-batch with its labels: per-token cross entropy (B, T) on the
    last pipeline stage (computed only where `loss_mask` reads it), hidden states elsewhere."""
    return model(
        mb.input_ids,
        mb.position_ids,
        mb.attention_mask,
        pixel_values=mb.pixel_values,
        image_grid_thw=mb.image_grid_thw,
        image_of_row=mb.image_of_row,
        labels=mb.labels,
        loss_mask=mb.loss_mask,
    )


def run_schedule(
    chunks: Sequence[Any],
    micro_batches: Sequence[MicroBatch],
    loss_fn: LossFn,
    *,
    forward_only: bool,
    device: torch.device,
) -> ScheduleResult:
    """Forward (and backward unless `forward_only`) of every micro-batch through the
    pipeline schedule. The model is called with labels and returns per-token cross entropy
    (B, T) on the last stage; `loss_fn(micro_batch, ce_BT)` turns it into the loss."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    if not micro_batches:
        return ScheduleResult(metrics=[])

    @cpu_compat.outside_cuda_redirect  # the model's forward needs no redirection
    def forward_step(data_iterator: Iterator[MicroBatch], model):
        mb = next(data_iterator).to(device)
        output = forward_micro_batch(model, mb)
        # A middle pipeline stage's hidden states are sent point-to-point: gloo needs them
        # contiguous (the local layer spec returns a transposed view).
        return output.contiguous(), functools.partial(loss_fn, mb)

    # The shapes matter only to pipeline communication: without pipeline parallelism the
    # micro-batches may differ in width (`make_length_grouped_micro_batches`).
    rows, width = micro_batches[0].input_ids.shape
    forward_backward = get_forward_backward_func()
    context = torch.no_grad() if forward_only else contextlib.nullcontext()
    with region("forward" if forward_only else "forward_backward"), compat_scope(), context:
        store = forward_backward(
            forward_step_func=forward_step,
            data_iterator=iter(micro_batches),
            model=list(chunks),
            num_microbatches=len(micro_batches),
            seq_length=width,
            micro_batch_size=rows,
            forward_only=forward_only,
        )
    return ScheduleResult(metrics=list(store or []))


def grads_are_finite(chunks: Sequence[Any]) -> bool:
    """True when every gradient buffer of every rank is finite (a world all-reduce)."""
    bad = 0
    for chunk in chunks:
        for buffer in getattr(chunk, "buffers", []):
            bad += int(not torch.isfinite(buffer.grad_data).all())
    if dist.is_initialized():
        bad = all_reduce_sum(float(bad), "world")
    return bad == 0


def zero_grads(chunks: Sequence[Any], optimizer) -> None:
    for chunk in chunks:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()


def optimizer_step(optimizer, scheduler) -> tuple[bool, float]:
    """(applied, grad_norm). One LR-schedule step per optimizer step."""
    with region("optimizer"), compat_scope():
        applied, grad_norm, _ = optimizer.step()
    if applied:
        scheduler.step(increment=1)
    return bool(applied), float(grad_norm) if grad_norm is not None else float("nan")


def reduce_metrics(metrics: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Sum [sum, count] metric pairs over micro-batches and DP ranks, then divide.

    Metrics live on the last pipeline stage; the sums travel over the world group (other
    stages contribute zeros), so every rank gets the same numbers. With one pipeline stage
    every rank ran the same loss function and holds the names already; with several, the
    other stages learn them from the last one (an object gather, so only then)."""
    from megatron.core import parallel_state

    with region("metrics"):
        names = sorted({k for m in metrics for k in m})
        one_stage = (
            parallel_state.model_parallel_is_initialized()
            and parallel_state.get_pipeline_model_parallel_world_size() == 1
        )
        if dist.is_initialized() and not one_stage:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, names)
            names = sorted({n for g in gathered for n in g})
        totals = torch.zeros(len(names), 2, dtype=torch.float64)
        for m in metrics:
            for i, name in enumerate(names):
                if name in m:
                    totals[i] += m[name].detach().to(torch.float64).cpu().reshape(2)
        if dist.is_initialized():
            totals = all_reduce_sum(totals, "world")
        return {
            name: float(totals[i, 0] / totals[i, 1]) if totals[i, 1] > 0 else float("nan")
            for i, name in enumerate(names)
        }
