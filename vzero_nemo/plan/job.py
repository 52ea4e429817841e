"""What the planner plans: a model, a layout over GPUs, and one iteration's work.

    job = job_from_config(cfg)               # a finalized VZeroConfig
    job = replace(job, layout=Layout(tp=8, pp=4, dp=2, ...))

`Model` holds the dimensions of `vzero_nemo.models.sizes` (the same table the providers are
built from) plus the precision of weights, gradients and kernels; `Layout` the TP/PP/VPP/DP
split and the memory options; `Workload` the sequences of one iteration on one DP rank: the
rollout turns (rows, distinct prompts, prompt and new tokens) and the trained sequences.

Token counts: memory is planned for the worst case, every trained sequence padded to
`model.seq_length` (the longest a micro-batch can be). Time is planned for the expected
lengths: image tokens from `model.max_pixels`, prompt text from the game's own prompts for
the configured style (rendered with the scripted oracle's clues, at ~4 characters per token,
the usual rate of a BPE tokenizer on English), responses at their `rollout.max_*_tokens`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vzero_nemo.config import VZeroConfig
from vzero_nemo.models.sizes import Qwen25VLDims, model_dims, padded_vocab_size

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS_PER_MESSAGE = 8
"""<|im_start|>role\\n ... <|im_end|>\\n plus the vision start/end markers."""
PROJECT_VOCAB_TOKENS = 2048
"""Tokens of the project's tokenizer (`models.tokenizer.TINY_VOCAB_SIZE`), for sizes whose
vocabulary is the tokenizer's (`vocab_size=None`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Model:
    dims: Qwen25VLDims
    vocab_size: int
    """Embedding rows (padded)."""
    dtype_bytes: int
    """Weights and activations: 2 (bf16) or 4 (fp32)."""
    grad_bytes: int = 4
    """Gradient buffer per trainable parameter: 4 (megatron DDP `grad_reduce_in_fp32`, as
    `training.engine` configures it) or 2."""
    master_bytes: int | None = None
    """Optimizer bytes per trainable parameter (fp32 master copy + Adam moments): None
    derives 8 for fp32 weights (moments only) and 12 for bf16."""
    fused_kernels: bool = True
    """transformer-engine fused attention and SwiGLU (GPU) keep no attention scores; the
    local kernels (CPU) keep the softmax and an expanded copy of K/V per head."""
    freeze_vision: bool = False
    with_vision: bool = True
    """False plans a text-only model of the same language dimensions (no vision tower)."""
    with_reference: bool = True
    """A frozen reference is scored (KL coefficient > 0)."""

    @property
    def optimizer_bytes(self) -> int:
        if self.master_bytes is not None:
            return self.master_bytes
        return 8 if self.dtype_bytes == 4 else 12


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    tp: int
    pp: int
    dp: int
    vpp: int | None = None
    sequence_parallel: bool = False
    distributed_optimizer: bool = False
    recompute: str = "none"
    """none | selective | full (megatron `recompute_granularity`, uniform 1 layer)."""
    micro_batch: int = 1
    offload_reference: bool = False

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def describe(self) -> str:
        vpp = f" VPP={self.vpp}" if self.vpp else ""
        sp = " SP" if self.sequence_parallel else ""
        return f"TP={self.tp} PP={self.pp}{vpp} DP={self.dp}{sp} EP=1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Turn:
    """One generation turn, per game."""

    name: str
    rows: int
    """Sequences generated per game."""
    unique_prompts: int
    """Distinct prompts per game (the observer's vote samples share one): prefill work."""
    prompt_tokens: int
    new_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """One iteration over all DP ranks (`per_rank` divides the games among them)."""

    games: int
    """Games per iteration (`data.games_per_iteration`)."""
    turns: tuple[Turn, ...]
    max_batch: int
    """Rows per generation call (`rollout.max_batch`)."""
    trained_per_game: int
    """Sequences trained per game (the decision stage, the larger one here)."""
    train_tokens: int
    """Expected tokens of a trained sequence (prompt + response)."""
    seq_tokens: int
    """Padded width a micro-batch can reach (`model.seq_length`): memory worst case."""
    response_tokens: int
    """Longest trained response (the positions where logits are computed)."""
    steps_per_iteration: int
    image_patches: int
    """Vision patches of one image (before the 2x2 merge)."""

    def games_per_rank(self, dp: int) -> int:
        return math.ceil(self.games / dp)

    def trained_per_rank(self, dp: int) -> int:
        return self.games_per_rank(dp) * self.trained_per_game

    def step_sequences_per_rank(self, dp: int) -> int:
        """Trained sequences of one optimizer step on one DP rank."""
        return math.ceil(self.trained_per_rank(dp) / self.steps_per_iteration)


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    model: Model
    layout: Layout
    work: Workload


def model_from_config(cfg: VZeroConfig, dims: Qwen25VLDims | None = None) -> Model:
    dims = dims or model_dims(cfg.model)
    vocab = dims.vocab_size or padded_vocab_size(PROJECT_VOCAB_TOKENS)
    return Model(
        dims=dims,
        vocab_size=vocab,
        dtype_bytes=2 if cfg.model.params_dtype == "bf16" else 4,
        fused_kernels=cfg.launch.gpu != "cpu",
        freeze_vision=cfg.model.freeze_vision,
        with_reference=cfg.grpo.kl_coef > 0,
    )


def layout_from_config(cfg: VZeroConfig) -> Layout:
    p = cfg.parallel
    assert p.data_parallel_size is not None, "finalize the config first"
    return Layout(
        tp=p.tensor_model_parallel_size,
        pp=p.pipeline_model_parallel_size,
        dp=p.data_parallel_size,
        vpp=p.virtual_pipeline_model_parallel_size,
        sequence_parallel=p.sequence_parallel,
        distributed_optimizer=p.use_distributed_optimizer,
        recompute=cfg.model.recompute,
        micro_batch=cfg.train.micro_batch_size,
        offload_reference=cfg.model.offload_reference,
    )


def image_patches(cfg: VZeroConfig, dims: Qwen25VLDims) -> int:
    """Vision patches of a `max_pixels` image (Qwen2.5-VL's resize keeps the area <= it, in
    whole merged groups)."""
    group = dims.vision.patch_size * dims.vision.spatial_merge_size
    return (cfg.model.max_pixels // group**2) * dims.vision.spatial_merge_size**2


def _prompt_text_tokens(cfg: VZeroConfig) -> list[int]:
    """Estimated text tokens of the longest prompt of each turn (scripted oracle clues)."""
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.policies import make_policy
    from vzero_nemo.game.synthetic import random_truths

    env = GameBatch(random_truths("clevr", 4, seed=0), cfg.game, seed=0, grpo=cfg.grpo)
    policy = make_policy("oracle", cfg.game, seed=0)
    lengths = []
    while not env.done:
        requests = env.pending_requests()
        tokens = 0
        for r in requests:
            text = sum(_message_chars(m) for m in r.messages) / CHARS_PER_TOKEN
            tokens = max(tokens, math.ceil(text) + TEMPLATE_TOKENS_PER_MESSAGE * len(r.messages))
        lengths.append(tokens)
        env.submit({r.request_id: policy(r, env.truths[r.game_index]) for r in requests})
    return lengths


def _message_chars(message: dict) -> int:
    content = message["content"]
    if isinstance(content, str):
        return len(content)
    return sum(len(part.get("text", "")) for part in content)


def workload_from_config(cfg: VZeroConfig, dims: Qwen25VLDims | None = None) -> Workload:
    dims = dims or model_dims(cfg.model)
    g, r = cfg.game, cfg.rollout
    patches = image_patches(cfg, dims)
    image_tokens = patches // dims.vision.spatial_merge_size**2
    text_tokens = _prompt_text_tokens(cfg)
    voters = g.num_votes if g.vote_mode == "observer" else g.num_players - g.num_spies
    turns = []
    if r.clue_policy == "model":
        for index, text in enumerate(text_tokens[:-1]):
            turns.append(
                Turn(
                    name=f"clue turn {index + 1}",
                    rows=1,
                    unique_prompts=1,
                    prompt_tokens=image_tokens + text,
                    new_tokens=r.max_clue_tokens,
                )
            )
    vote = Turn(
        name="vote turn",
        rows=voters,
        unique_prompts=1 if g.vote_mode == "observer" else voters,
        prompt_tokens=image_tokens + text_tokens[-1],
        new_tokens=r.max_vote_tokens,
    )
    return Workload(
        games=cfg.data.games_per_iteration,
        turns=(*turns, vote),
        max_batch=r.max_batch,
        trained_per_game=voters,
        train_tokens=min(cfg.model.seq_length, vote.prompt_tokens + vote.new_tokens),
        seq_tokens=cfg.model.seq_length,
        response_tokens=min(cfg.model.seq_length, max(r.max_clue_tokens, r.max_vote_tokens)),
        steps_per_iteration=cfg.train.steps_per_iteration,
        image_patches=patches,
    )


def job_from_config(cfg: VZeroConfig, dims: Qwen25VLDims | None = None) -> Job:
    """The job a finalized config describes (its own parallel layout)."""
    return Job(
        model=model_from_config(cfg, dims),
        layout=layout_from_config(cfg),
        work=workload_from_config(cfg, dims),
    )
