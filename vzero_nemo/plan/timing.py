"""Predicted time of one iteration, split into rollout, reference log-probs and training.

    times = predict_times(job, device, mfu=0.4, bandwidth_efficiency=0.7)

FLOPs (per DP rank; every DP rank does the same work at the same time):
- language model, forward: 2 x (layer parameters + output layer) per token, plus causal
  attention 2 x layers x T^2 x hidden per sequence of T tokens; the vision tower: 2 x its
  parameters per patch plus its (windowed / full) attention;
- training: 3x the forward (forward + backward), +1 forward under full recompute; the
  pipeline bubble multiplies by 1 + (PP - 1) / (micro-batches x VPP);
- reference log-probs: one forward of the trained sequences, same bubble;
- rollout: each generation call = a prefill of its distinct prompts (compute-bound) + one
  decode step per new token, each the slower of its FLOPs and the bytes it reads (this
  GPU's language weights and the KV cache so far). Pipeline stages decode one after another
  (generation does not overlap micro-batches), so PP does not speed up the rollout.
Compute runs at `mfu` x the device's dense peak, memory traffic at `bandwidth_efficiency` x
its bandwidth; communication (TP all-reduces, PP sends, DP gradient reduction) is not
modelled, so predictions are lower bounds where it is not hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vzero_nemo.models.sizes import num_parameters
from vzero_nemo.plan.devices import DeviceSpec
from vzero_nemo.plan.job import Job, Model
from vzero_nemo.plan.memory import FP32


@dataclass(frozen=True, kw_only=True, slots=True)
class IterationTime:
    rollout_s: float
    reference_s: float
    training_s: float
    train_tokens: int
    """Tokens of the trained sequences of one iteration over all DP ranks."""
    generated_tokens: int
    """Tokens generated in one iteration over all DP ranks (upper bound: every row runs to
    its maximum length)."""
    model_flops: float
    """Training FLOPs without recompute (the numerator of MFU), all ranks."""

    @property
    def total_s(self) -> float:
        return self.rollout_s + self.reference_s + self.training_s


def dense_params(model: Model) -> tuple[int, int]:
    """(language parameters that do matmul work per token, vision parameters)."""
    counts = num_parameters(model.dims, model.vocab_size)
    if not model.with_vision:
        counts["vision"] = 0
    input_embedding = model.vocab_size * model.dims.hidden_size
    if model.dims.tie_word_embeddings:
        input_embedding = 0  # the shared matrix is the output layer
    return counts["language"] - input_embedding, counts["vision"]


def forward_flops(model: Model, tokens: int, images: int, patches: int) -> float:
    """One forward over a sequence of `tokens` with `images` images."""
    language, vision = dense_params(model)
    d = model.dims
    flops = 2.0 * language * tokens + 2.0 * d.num_layers * tokens**2 * d.hidden_size
    if not model.with_vision or not patches:
        return flops
    v = d.vision
    window = min(patches, (v.window_size // v.patch_size) ** 2)
    full = sum(1 for i in v.fullatt_block_indexes if i < v.depth)
    attention = 4.0 * patches * v.hidden_size * ((v.depth - full) * window + full * patches)
    return flops + images * (2.0 * vision * patches + attention)


def _bubble(job: Job, sequences_per_rank: int) -> float:
    layout = job.layout
    micro_batches = max(1, math.ceil(sequences_per_rank / layout.micro_batch))
    return 1.0 + (layout.pp - 1) / (micro_batches * (layout.vpp or 1))


def _compute_s(flops: float, gpus: int, device: DeviceSpec, mfu: float) -> float:
    return flops / (gpus * device.peak_flops * mfu)


def rollout_seconds(job: Job, device: DeviceSpec, mfu: float, bw_eff: float) -> float:
    model, layout, work = job.model, job.layout, job.work
    d, e, t = model.dims, model.dtype_bytes, layout.tp
    language, _ = dense_params(model)
    weight_bytes = language * e / t  # all stages, read one after another
    kv_per_token = 2 * max(1, d.num_query_groups // t) * d.head_dim * e * d.num_layers
    games = work.games_per_rank(layout.dp)
    total = 0.0
    for turn in work.turns:
        unique = games * turn.unique_prompts
        prefill = unique * forward_flops(model, turn.prompt_tokens, 1, work.image_patches)
        total += _compute_s(prefill, t, device, mfu)
        calls = math.ceil(games * turn.rows / work.max_batch)
        rows = min(games * turn.rows, work.max_batch)
        context = turn.prompt_tokens + turn.new_tokens / 2
        flops = rows * (2.0 * language + 4.0 * d.num_layers * context * d.hidden_size)
        read = weight_bytes + rows * context * kv_per_token + rows * model.vocab_size * FP32
        step = max(_compute_s(flops, t, device, mfu), read / (device.memory_bandwidth * bw_eff))
        total += calls * turn.new_tokens * step
    return total


def predict_times(
    job: Job, device: DeviceSpec, *, mfu: float = 0.4, bandwidth_efficiency: float = 0.7
) -> IterationTime:
    model, layout, work = job.model, job.layout, job.work
    if not 0 < mfu <= 1 or not 0 < bandwidth_efficiency <= 1:
        raise ValueError(
            f"mfu={mfu} and bandwidth_efficiency={bandwidth_efficiency} must be in (0, 1]"
        )
    per_rank = work.trained_per_rank(layout.dp)
    forward = per_rank * forward_flops(model, work.train_tokens, 1, work.image_patches)
    gpus = layout.tp * layout.pp
    bubble = _bubble(job, work.step_sequences_per_rank(layout.dp))
    passes = 4.0 if layout.recompute == "full" else 3.0
    reference = _compute_s(forward, gpus, device, mfu) * bubble if model.with_reference else 0.0
    games = work.games_per_rank(layout.dp)
    generated = sum(games * turn.rows * turn.new_tokens for turn in work.turns)
    return IterationTime(
        rollout_s=rollout_seconds(job, device, mfu, bandwidth_efficiency),
        reference_s=reference,
        training_s=_compute_s(passes * forward, gpus, device, mfu) * bubble,
        train_tokens=per_rank * work.train_tokens * layout.dp,
        generated_tokens=generated * layout.dp,
        model_flops=3.0 * forward * layout.dp,
    )
