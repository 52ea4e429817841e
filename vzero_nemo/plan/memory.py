"""Memory per GPU of a job: static state, then the peak of each phase, per pipeline stage.

    plan = plan_memory(job)                  # MemoryPlan of the most loaded stage
    plan.peak_bytes, plan.peak_phase

Static (all phases): bf16/fp32 weights, the gradient buffer, optimizer state (Adam moments,
plus an fp32 master copy for bf16 weights; divided by DP with the distributed optimizer), the
frozen reference when resident. Phases add what lives only then:

- rollout: the KV cache of the largest generation call (rows x (prompt + new tokens) x
  layers of this stage x KV heads / TP), the packed prefill's working set, the vision tower's
  forward over the distinct images, the sampled rows' full-vocabulary logits;
- reference: an offloaded reference's weights, one micro-batch's forward working set;
- training: stored activations of the micro-batches in flight (1F1B: PP - stage; interleaved
  as megatron's warm-up), per layer by recompute mode; the vision tower's (a Hugging Face
  module that megatron's recompute does not reach) on the first stage; the logits and
  fp32 cross-entropy of one micro-batch on the last stage; backward's working set;
- optimizer step: the update's temporaries (torch's per-tensor AdamW on CPU; none for the
  fused Adam of the GPU containers).

Per-layer activations are counted tensor by tensor for the two kernel sets megatron uses
(`layer_activation_bytes`: transformer-engine's fused kernels on GPU, the local ones on CPU),
the vision tower's for Hugging Face's module (`vision_activation_bytes`), and checked against
what autograd really keeps in a CPU training step (`plan.measure`, `plan.crosscheck`:
docs/results/planner_crosscheck.md). Backward's working set is taken as two layers' worth of
activations (a layer's gradients next to its stored or recomputed activations) plus the
logits' gradient, within the stated error of the measured peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from vzero_nemo.models.sizes import num_parameters
from vzero_nemo.plan.job import Job, Layout, Model, Workload

FP32 = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class StageParams:
    stage: int
    layer_ranges: tuple[tuple[int, int], ...]
    """[start, end) of the language layers this rank holds (one range per VPP chunk)."""
    language: int
    """Language-model parameters on one GPU of this stage (TP share + replicated norms)."""
    vision: int
    """Vision tower parameters (replicated on every GPU of the first stage)."""

    @property
    def num_layers(self) -> int:
        return sum(end - start for start, end in self.layer_ranges)

    @property
    def total(self) -> int:
        return self.language + self.vision


def layout_errors(model: Model, layout: Layout) -> list[str]:
    """Why megatron cannot build `model` under `layout` (empty when it can)."""
    d, errors = model.dims, []
    tp, pp, chunks = layout.tp, layout.pp, layout.pp * (layout.vpp or 1)
    for what, value in (
        ("num_attention_heads", d.num_attention_heads),
        ("num_query_groups", d.num_query_groups),
        ("ffn_hidden_size", d.ffn_hidden_size),
        ("vocab_size", model.vocab_size),
    ):
        if value % tp:
            errors.append(f"{what}={value} is not divisible by TP={tp}")
    if d.num_layers % chunks:
        errors.append(f"num_layers={d.num_layers} is not divisible by PP x VPP = {chunks}")
    if layout.vpp is not None and pp < 2:
        errors.append(f"VPP={layout.vpp} needs PP >= 2")
    if layout.sequence_parallel and tp < 2:
        errors.append("sequence parallelism needs TP >= 2")
    return errors


def stage_params(model: Model, layout: Layout, stage: int) -> StageParams:
    d = model.dims
    counts = num_parameters(d, model.vocab_size)
    h = d.hidden_size
    rows = model.vocab_size * h
    embeddings = rows * (1 if d.tie_word_embeddings else 2)
    per_layer = (counts["language"] - embeddings - h) // d.num_layers
    per_layer_tp = (per_layer - 2 * h) // layout.tp + 2 * h  # the two norms are replicated
    chunks = layout.vpp or 1
    size = d.num_layers // (layout.pp * chunks)
    ranges = tuple(
        (c * layout.pp * size + stage * size, c * layout.pp * size + (stage + 1) * size)
        for c in range(chunks)
    )
    language = len(ranges) * size * per_layer_tp
    if stage == 0:
        language += rows // layout.tp
    if stage == layout.pp - 1:
        language += h + (rows // layout.tp if not d.tie_word_embeddings or layout.pp > 1 else 0)
    vision = counts["vision"] if stage == 0 and model.with_vision else 0
    return StageParams(stage=stage, layer_ranges=ranges, language=language, vision=vision)


@dataclass(kw_only=True, slots=True)
class MemoryPlan:
    stage: int
    """The pipeline stage whose peak is highest (the one reported)."""
    params: StageParams
    static: dict[str, int]
    phases: dict[str, dict[str, int]]
    per_stage_peak: list[int] = field(default_factory=list)

    def phase_total(self, phase: str) -> int:
        return sum(self.static.values()) + sum(self.phases[phase].values())

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phase_total)

    @property
    def peak_bytes(self) -> int:
        return self.phase_total(self.peak_phase)


def static_bytes(model: Model, layout: Layout, params: StageParams) -> dict[str, int]:
    trainable = params.language + (0 if model.freeze_vision else params.vision)
    shards = layout.dp if layout.distributed_optimizer else 1
    out = {
        "weights": params.total * model.dtype_bytes,
        "gradients": trainable * model.grad_bytes,
        "optimizer": -(-trainable * model.optimizer_bytes // shards),
    }
    if model.with_reference and not layout.offload_reference:
        out["reference (resident)"] = params.total * model.dtype_bytes
    return out


def layer_activation_bytes(model: Model, layout: Layout, tokens: int, rows: int) -> int:
    """Bytes one language layer keeps for backward for one micro-batch under
    `layout.recompute` none / selective (full: see `training_bytes`)."""
    d, t = model.dims, layout.tp
    sbh = tokens * rows * d.hidden_size
    sbf = tokens * rows * d.ffn_hidden_size
    kv = 2 * tokens * rows * d.num_query_groups * d.head_dim  # K and V at the KV groups
    unsplit_div = t if layout.sequence_parallel else 1
    if model.fused_kernels:
        # transformer-engine: each LayerNormLinear keeps its input and normalized output;
        # flash attention keeps q, k, v and its output (linear_proj's input); the fused
        # SwiGLU keeps fc1's output, fc2 its input. Selective recompute changes nothing.
        unsplit, split = 4 * sbh, 2 * sbh + kv + 3 * sbf
    else:
        # megatron's local layers (CPU) with the project's SDPA core attention: each RMSNorm
        # keeps its input and normalized values, the linear after it their scaled output;
        # M-RoPE keeps cos/sin; attention keeps the rotated q and k, the fused qkv output
        # (v is a view of it), its output and the float copy of the padding mask; SwiGLU
        # keeps fc1's output, the silu and the product (fc2's input). Selective recompute
        # recomputes the attention output.
        mask = rows * tokens * tokens
        unsplit = 6 * sbh + 4 * tokens * rows * d.head_dim + mask
        out = 0 if layout.recompute == "selective" else sbh
        split = 2 * sbh + out + 3 * kv // 2 + 5 * sbf
    return (unsplit // unsplit_div + split // t) * model.dtype_bytes


def vision_activation_bytes(model: Model, patches: int, images: int) -> int:
    """Bytes the vision tower (Hugging Face's module, SDPA / flash attention) keeps for
    backward for `images` images of `patches` patches: per block both RMSNorms' inputs and
    normalized values, the qkv / proj / gate inputs, q, k, v, the attention output and its
    rotary tables, the SwiGLU's four f-wide tensors; the merger's norm and MLP; the patches."""
    v, e = model.dims.vision, model.dtype_bytes
    p = patches * images
    per_block = (13 * v.hidden_size + 4 * v.intermediate_size) * p * e
    merger = 5 * p * v.hidden_size * e
    pixels = p * 3 * v.temporal_patch_size * v.patch_size**2 * e
    return v.depth * per_block + merger + pixels


def in_flight(layout: Layout, stage: int, micro_batches: int) -> int:
    """Micro-batch chunks whose activations a stage holds at once (megatron's warm-up)."""
    if layout.vpp is None:
        return min(layout.pp - stage, micro_batches)
    warmup = (layout.pp - stage - 1) * 2 + (layout.vpp - 1) * layout.pp
    return min(warmup + 1, micro_batches * layout.vpp)


def training_bytes(job: Job, params: StageParams) -> dict[str, int]:
    model, layout, work = job.model, job.layout, job.work
    b, s, e = layout.micro_batch, work.seq_tokens, model.dtype_bytes
    micro_batches = max(1, -(-work.step_sequences_per_rank(layout.dp) // b))
    chunks = in_flight(layout, params.stage, micro_batches)
    layers_per_chunk = params.num_layers // (layout.vpp or 1)
    sbh = s * b * model.dims.hidden_size
    no_recompute = layer_activation_bytes(model, replace(layout, recompute="none"), s, b)
    if layout.recompute == "full":
        per_layer = sbh * e // (layout.tp if layout.sequence_parallel else 1)
    else:
        per_layer = layer_activation_bytes(model, layout, s, b)
    out = {"activations": chunks * layers_per_chunk * per_layer}
    if params.stage == 0 and model.with_vision and work.image_patches:
        out["vision activations"] = min(layout.pp, micro_batches) * vision_activation_bytes(
            model, work.image_patches, b
        )
    # The output layer and the fp32 softmax run only where the loss reads them (the
    # response tokens; every position under sequence parallelism).
    scored = s if layout.sequence_parallel else min(s, work.response_tokens)
    logits = b * scored * (model.vocab_size // layout.tp) * FP32
    if params.stage == layout.pp - 1:
        out["logits + loss"] = logits + 3 * sbh * e  # + the final norm's and output's inputs
    # Backward holds a layer's activation gradients next to its (stored or recomputed)
    # activations: two layers' worth; on the last stage also the logits' gradient.
    working = 2 * no_recompute
    out["backward working set"] = working + (logits if params.stage == layout.pp - 1 else 0)
    return out


def largest_tensor(model: Model, layout: Layout, params: StageParams) -> int:
    """Elements of the largest trainable parameter tensor on one GPU of a stage."""
    d, t = model.dims, layout.tp
    sizes = [2 * d.ffn_hidden_size * d.hidden_size // t] if params.num_layers else []
    if params.stage == 0 or params.stage == layout.pp - 1:
        sizes.append(model.vocab_size * d.hidden_size // t)
    if params.vision and not model.freeze_vision:
        merged = d.vision.hidden_size * d.vision.spatial_merge_size**2
        sizes += [
            merged * merged,
            merged * d.hidden_size,
            2 * d.vision.intermediate_size * d.vision.hidden_size,
        ]
    return max(sizes, default=0)


def optimizer_step_bytes(job: Job, params: StageParams) -> dict[str, int]:
    """Transient memory of the optimizer step. torch's AdamW (CPU, no apex) works tensor by
    tensor: the square root and division temporaries and the gradient-clipping copy hold up
    to three fp32 copies of the largest tensor. The fused multi-tensor Adam of the GPU
    containers (transformer-engine / apex) updates in place."""
    if job.model.fused_kernels:
        return {}
    return {"update temporaries": 3 * largest_tensor(job.model, job.layout, params) * FP32}


def reference_bytes(job: Job, params: StageParams) -> dict[str, int]:
    model, layout, work = job.model, job.layout, job.work
    if not model.with_reference:
        return {}
    b, s = layout.micro_batch, work.seq_tokens
    no_recompute = replace(layout, recompute="none")
    out = {"forward working set": layer_activation_bytes(model, no_recompute, s, b)}
    if layout.offload_reference:
        out["reference weights (on device)"] = params.total * model.dtype_bytes
    if params.stage == layout.pp - 1:
        out["logits"] = b * s * (model.vocab_size // layout.tp) * (model.dtype_bytes + FP32)
    return out


def largest_call(work: Workload, dp: int) -> tuple[int, int, int]:
    """(rows, distinct prompts, cache length) of the generation call whose KV cache is
    largest on one DP rank (rows are chunked by `rollout.max_batch`)."""
    best = (0, 0, 0)
    games = work.games_per_rank(dp)
    for turn in work.turns:
        rows = min(games * turn.rows, work.max_batch)
        unique = min(games * turn.unique_prompts, rows)
        length = min(work.seq_tokens, turn.prompt_tokens + turn.new_tokens)
        if rows * length > best[0] * best[2]:
            best = (rows, unique, length)
    return best


def rollout_bytes(job: Job, params: StageParams) -> dict[str, int]:
    model, layout, work = job.model, job.layout, job.work
    if not work.turns:  # no rollout planned (e.g. supervised fine-tuning)
        return {}
    d, e, t = model.dims, model.dtype_bytes, layout.tp
    rows, unique, length = largest_call(work, layout.dp)
    kv_groups = max(1, d.num_query_groups // t)
    out = {"KV cache": 2 * rows * kv_groups * d.head_dim * length * e * params.num_layers}
    prompt = max(1, length - max(turn.new_tokens for turn in work.turns))
    packed = unique * prompt
    out["prefill working set"] = packed * (3 * d.ffn_hidden_size // t + 4 * d.hidden_size) * e
    if params.stage == 0 and model.with_vision and work.image_patches:
        v = d.vision
        out["vision forward"] = (
            unique * work.image_patches * (2 * v.intermediate_size + 4 * v.hidden_size) * e
        )
    if params.stage == layout.pp - 1:
        out["sampling logits"] = rows * model.vocab_size * FP32 * 2
    return out


def plan_memory(job: Job) -> MemoryPlan:
    """Memory of every stage; returns the plan of the stage with the highest peak."""
    plans = []
    for stage in range(job.layout.pp):
        params = stage_params(job.model, job.layout, stage)
        plans.append(
            MemoryPlan(
                stage=stage,
                params=params,
                static=static_bytes(job.model, job.layout, params),
                phases={
                    "rollout": rollout_bytes(job, params),
                    "reference": reference_bytes(job, params),
                    "training": training_bytes(job, params),
                    "optimizer step": optimizer_step_bytes(job, params),
                },
            )
        )
    worst = max(plans, key=lambda p: p.peak_bytes)
    worst.per_stage_peak = [p.peak_bytes for p in plans]
    return worst


def with_layout(job: Job, **changes) -> Job:
    """`job` with some layout fields changed."""
    return replace(job, layout=replace(job.layout, **changes))
