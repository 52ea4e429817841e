"""Typed configuration tree for a Vision-Zero run, with NeMo-style `key=value` overrides.

A run is described by one `VZeroConfig`: a tree of kw-only dataclasses (model, parallel,
game, rollout, grpo, spo, data, train, pretrain, eval, launch, checkpoint, logging). Recipes
(`recipes/`) are small functions that return a config with some fields changed; users then
change more fields from the command line:

    python -m vzero_nemo.train --recipe tiny_cpu train.iterations=20 game.vote_mode=civilians

Overrides are type-checked against the field's annotation; an unknown key is an error that
suggests the closest valid keys. `finalize(world_size)` validates the whole tree and derives
values (e.g. the data-parallel size from world size, TP and PP); it raises `ValueError` naming
the bad value and how to fix it.

Where the paper and the official code disagree, the field's docstring says so; the preset
`paper` (default) and `official_code` select the whole set at once (`preset=official_code`,
applied before the other overrides of the same command line).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from vzero_nemo.models.sizes import uses_project_tokenizer

Stage = Literal["decision", "clue"]
PRESETS = ("paper", "official_code")
PRETRAIN_TASKS = ("caption", "describe", "exists", "vote", "wrong")


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    size: Literal["tiny", "tiny_s", "tiny_l", "7b_1layer", "7b", "32b", "72b", "auto"] = "tiny"
    """Named Qwen2.5-VL size. `tiny` is a few-million-parameter model of the same
    architecture that runs on CPU (`tiny_s` / `tiny_l`: half / twice its language model's
    width and depth; `7b_1layer`: the 7B widths at one layer, for memory checks); 7b / 32b /
    72b match the published checkpoints. `auto` takes the dimensions from
    `hf_path/config.json` (any Qwen2.5-VL: 3B, depth-reduced models)."""
    hf_path: str | None = None
    """Local directory of a Hugging Face Qwen2.5-VL checkpoint (weights, tokenizer, processor)
    to import. Never downloaded: it must exist on disk."""
    tokenizer_path: str | None = None
    """Tokenizer directory; defaults to `hf_path` for real sizes and to the project's own
    tokenizer (built offline) for `tiny`."""
    init_checkpoint: str | None = None
    """Megatron dist-checkpoint to initialise the policy (and reference) from, e.g. the tiny
    model's pre-training output. Ignored when resuming a run."""
    params_dtype: Literal["fp32", "bf16"] = "fp32"
    """Parameter and compute dtype. bf16 on GPU recipes, fp32 on CPU."""
    seq_length: int = 512
    """Maximum tokens per sequence (prompt + response) the model is built for."""
    min_pixels: int = 48 * 48
    """Smallest image area (pixels) after Qwen2.5-VL's smart resize."""
    max_pixels: int = 48 * 48
    """Largest image area (pixels) after Qwen2.5-VL's smart resize."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation granularity (megatron-core `recompute_granularity`)."""
    offload_reference: bool = False
    """Keep the frozen reference model on CPU between its forward passes (GPU memory)."""
    freeze_vision: bool = False
    """Freeze the vision tower. The paper fine-tunes everything (default False)."""


@dataclass(kw_only=True, slots=True)
class ParallelConfig:
    tensor_model_parallel_size: int = 1
    """Tensor-parallel size (TP)."""
    pipeline_model_parallel_size: int = 1
    """Pipeline-parallel size (PP)."""
    virtual_pipeline_model_parallel_size: int | None = None
    """Interleaved pipeline chunks per PP rank (VPP); None disables interleaving."""
    data_parallel_size: int | None = None
    """Derived by `finalize` as world_size / (TP * PP); set it only to assert a value."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """torch.distributed backend; `auto` picks nccl when CUDA is present, else gloo."""
    sequence_parallel: bool = False
    """Megatron sequence parallelism (GPU only, needs TP > 1)."""
    use_distributed_optimizer: bool = False
    """Shard optimizer state over DP ranks (GPU only)."""
    check_collectives: bool = False
    """Debug: assert that every collective the project issues gets tensors on the backend's
    communication device (CUDA for nccl), so a CPU (gloo) run catches what would fail under
    NCCL (`vzero_nemo.parallel.collective_check`)."""


@dataclass(kw_only=True, slots=True)
class GameConfig:
    num_players: int = 4
    """Seats per game: civilians + spies."""
    num_spies: int = 1
    """Spies per game. Spy seats are drawn per game from the seeded RNG."""
    num_clue_rounds: int = 2
    """Clue rounds; in each round every seat speaks once, in seat order."""
    vote_mode: Literal["observer", "civilians"] = "observer"
    """`observer` (official code): an observer sees the original image and all clues and is
    sampled `num_votes` times (the GRPO group). `civilians` (paper text): each civilian
    votes."""
    num_votes: int = 8
    """Observer vote samples per game in `observer` mode (the GRPO group size)."""
    spy_image: Literal["modified", "blank"] = "modified"
    """What the spy sees: the edited image (default) or a blank image."""
    answer_format: Literal["think_answer", "boxed"] = "think_answer"
    """Format the prompts ask for: `<think>..</think><answer>..</answer>` (default) or free
    reasoning then `\\boxed{}` (official code). Parsing accepts both."""
    answer_parser: Literal["strict", "official"] = "strict"
    """How the answer slot and the vote are read. `strict`: the last answer slot; a vote names
    exactly one player ("2", "Player 2", "The spy is Player 2"), a hedge such as "2 or 3" is
    invalid. `official` (official code): the first `\\boxed{}`, the first digit 1-9 in it
    (so "2 or 3" votes 2), a JSON `{"spy": k}` fallback. See docs/official_code.md."""
    format_flag: Literal["strict", "official"] = "strict"
    """When a completion counts as well-formatted. `strict`: exactly the layout the prompt asks
    for, with a non-empty answer. `official` (official code): more than 10 characters of
    reasoning (tagged or not) and a non-empty answer."""
    allow_na: bool = True
    """Whether voters may answer N/A."""
    prompt_style: Literal["full", "compact"] = "full"
    """`full`: the paper's instructions. `compact`: the same information in few tokens, for
    tiny CPU models whose context and compute are small."""


@dataclass(kw_only=True, slots=True)
class RolloutConfig:
    temperature: float = 0.8
    """Sampling temperature (paper: 0.8)."""
    top_p: float = 1.0
    """Nucleus sampling threshold; 1.0 disables it."""
    max_clue_tokens: int = 64
    """Maximum new tokens of one clue turn (reasoning + answer)."""
    max_vote_tokens: int = 48
    """Maximum new tokens of one vote."""
    clue_policy: Literal["model", "oracle", "random"] = "model"
    """Who gives the clues: the policy (self-play) or a scripted policy from
    `vzero_nemo.game.policies` (isolates decision-stage learning; scripted clue turns are
    never trained, so only the decision stage trains)."""
    max_batch: int = 256
    """Sequences per generation call; a turn with more requests is generated in chunks."""


@dataclass(kw_only=True, slots=True)
class GRPOConfig:
    beta: float = 0.1
    """Clue-stage spy-vote weight in the zero-sum reward (paper Eq. 1)."""
    lam: float = 0.1
    """Clue-stage civilian-suspicion weight in the zero-sum reward (paper Eq. 1)."""
    decision_reward: Literal["paper", "official_code"] = "paper"
    """Decision reward: paper Eq. 4 (+1 / -0.5 / -1) or the official code's format shaping."""
    std_normalize: bool = True
    """Decision advantages: group z-score (True) or mean-only (False, as Dr. GRPO)."""
    group_std: Literal["sample", "population"] = "sample"
    """Standard deviation of the z-score: `sample` (Bessel-corrected, as TRL and verl) or
    `population` (divide by n, official code): advantages sqrt(n / (n - 1)) larger."""
    rae_alpha: float = 0.95
    """EMA factor of the Role-Advantage Estimation baselines (paper 0.95; official code 0.9)."""
    rae_subtract: Literal["updated", "previous", "none"] = "updated"
    """Subtract the just-updated baseline (paper) or the one from before this step (SPIRAL);
    `none` turns RAE off (advantage = raw clue reward; the baselines are still logged)."""
    rae_bias_correction: bool = False
    """Divide the RAE EMAs by (1 - alpha^t) as Adam does (not in the paper): the baselines
    then equal the role means from the first step instead of rising from 0."""
    rae_update: Literal["iteration", "game"] = "iteration"
    """RAE cadence. `iteration`: one EMA step per iteration from the role means over every
    clue sample of the global batch. `game` (official code: one step per game, i.e. per
    micro-step): the k-th game of every DP rank forms one step, from the mean over ranks of
    each game's spy reward and civilian-average reward; `games_per_iteration / DP` steps."""
    clip_eps_low: float = 0.2
    """Lower PPO clip: ratios below 1 - eps_low are clipped."""
    clip_eps_high: float = 0.2
    """Upper PPO clip: ratios above 1 + eps_high are clipped."""
    kl_coef: float = 0.04
    """KL penalty weight tau (both stages)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """KL(pi || pi_ref) estimator per token (Schulman's k1/k2/k3)."""
    loss_aggregation: Literal["global_token", "sequence_mean"] = "global_token"
    """`global_token`: sum over all response tokens of the step / global token count (same
    loss for any DP size and micro-batching). `sequence_mean`: per-sequence token mean, then
    mean over sequences (official code)."""


@dataclass(kw_only=True, slots=True)
class SPOConfig:
    schedule: Literal["iterative", "alternate"] = "iterative"
    """`iterative`: Iterative-SPO thresholds (paper). `alternate`: switch every
    `cycle_length` iterations (official code)."""
    cycle_length: int = 1
    """`alternate` only: iterations per stage before switching (official
    `interactive_cycle_length`: default 10, its run script 1)."""
    clue_stage_trains_votes: bool = False
    """Whether clue-stage iterations also train the observer's vote samples (official code:
    its interactive phase trains every sample of a clue step). Off: the clue stage trains
    only the clue turns (paper)."""
    start_stage: Stage = "decision"
    """Stage trained first."""
    to_clue_accuracy: float = 0.9
    """Decision -> clue when smoothed accuracy >= this ..."""
    to_clue_na_rate: float = 0.1
    """... and smoothed N/A rate <= this ..."""
    to_decision_error: float = 0.4
    """Clue -> decision when smoothed error (1 - accuracy) >= this ..."""
    to_decision_na_rate: float = 0.5
    """... or smoothed N/A rate >= this."""
    min_dwell: int = 5
    """K_min: iterations a stage must last before a switch."""
    ema_rho: float = 0.95
    """EMA factor of the accuracy / N/A statistics (start value 0)."""
    bias_correction: bool = False
    """Divide the EMAs by (1 - rho^t) as Adam does (not in the paper)."""


@dataclass(kw_only=True, slots=True)
class DataConfig:
    path: str | None = None
    """Directory of WebDataset shards written by `python -m data_prep generate` (its `train`
    split is played)."""
    val_path: str | None = None
    """Shard directory whose `val` split holds the held-out evaluation pairs; None uses the
    `val` split of `path`."""
    games_per_iteration: int = 32
    """Games (image pairs) per iteration over all data-parallel ranks."""
    seed: int | None = None
    """Data order seed; None uses `train.seed`."""


@dataclass(kw_only=True, slots=True)
class TrainConfig:
    iterations: int = 100
    """Self-play iterations (paper: 100)."""
    lr: float = 1e-5
    """Peak learning rate (paper: 1e-5)."""
    min_lr: float = 0.0
    """Learning rate at the end of the cosine decay."""
    warmup_fraction: float = 0.1
    """Fraction of `iterations` spent in linear warmup."""
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    """Learning-rate schedule after warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    """Global gradient-norm clip (paper: 1.0)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward micro-batch on one DP rank."""
    steps_per_iteration: int = 1
    """Optimizer steps per iteration: the active stage's samples are split into this many
    mini-batches (interleaved, so each holds a share of every GRPO group), one AdamW step
    each; the clipped ratio against the rollout's log-probs bounds the later, slightly
    off-policy steps (PPO-style). The LR schedule counts optimizer steps."""
    seed: int = 1234
    """Seed of everything: model init, spy seats, sampling, data order."""
    max_consecutive_nonfinite: int = 3
    """Abort after this many consecutive steps with a non-finite loss (each is skipped)."""
    time_budget_s: float | None = None
    """Stop cleanly (save, exit 0) when the next iteration would exceed this wall time."""
    profile: bool = False
    """Print after every iteration a table of where its time went (data, rollout prefill /
    decode per turn, vision tower, reference log-probs, forward/backward, optimizer,
    checkpoint); on CUDA every timed block then waits for the device, which costs speed.
    The `time/*` metrics are logged either way."""
    profile_trace_dir: str | None = None
    """Also write a torch profiler trace (chrome/perfetto JSON) of this process's second
    iteration (its first when it runs only one) into this directory, one file per rank."""


@dataclass(kw_only=True, slots=True)
class PretrainConfig:
    """Supervised pre-training of the tiny model (`python -m vzero_nemo.training.pretrain`):
    a stand-in for VLM pre-training. Optimizer settings other than the schedule (betas,
    weight decay, grad clip, micro-batch size) come from `train`."""

    steps: int = 300
    """Optimizer steps (one per batch)."""
    batch_size: int = 32
    """Examples per step."""
    num_pairs: int = 512
    """Training pairs drawn from the `train` split of `data.path`."""
    lr: float = 1e-3
    """Peak learning rate (cosine to 0 after a linear warmup)."""
    warmup_fraction: float = 0.05
    """Fraction of `steps` spent in linear warmup."""
    tasks: tuple[str, ...] = PRETRAIN_TASKS
    """Tasks sampled into each batch (see `vzero_nemo.training.pretrain`)."""
    agree_rate: float = 0.0
    """Describe examples whose target is an object an earlier clue already named (when one is
    in the image shown): without it the describe skill ignores the clue history."""
    eval_pairs: int = 64
    """Held-out pairs (`val` split) on which the skills are measured at the end."""
    eval_every: int = 0
    """Also measure the skills every N steps (0: only at the end)."""
    seed: int = 0
    """Seed of the example sampler (model init uses `train.seed`)."""


@dataclass(kw_only=True, slots=True)
class EvalConfig:
    """Held-out evaluation (`python -m vzero_nemo.eval run`; `vzero_nemo.eval.heldout`)."""

    games: int = 64
    """Held-out games from the `val` split, spread evenly over its domains (a domain with
    fewer pairs replays them with other spy seats)."""
    seed: int = 12345
    """Seed of spy seats and sampling in evaluation games."""
    retention_items: int = 256
    """Held-out clevr pairs on which the pre-training skills are probed (0: no probe)."""
    sample_games: int = 4
    """Games whose transcripts and images are kept for the report's game viewer."""


@dataclass(kw_only=True, slots=True)
class LaunchConfig:
    """The job shape a recipe is laid out for. `python -m vzero_nemo.train --dry-run` and
    `python -m vzero_nemo.plan` resolve the layout for it when no WORLD_SIZE is set; a launched
    job's world size comes from torchrun / Slurm (`sbatch --nodes=16` scales DP)."""

    nodes: int = 1
    gpus_per_node: int = 1
    """Processes per node: one per GPU (CPU recipes: processes)."""
    gpu: Literal["h100-80gb", "h200-141gb", "a100-80gb", "cpu"] = "cpu"
    """Device the planner sizes memory and time for (`vzero_nemo.plan.devices`)."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(kw_only=True, slots=True)
class CheckpointConfig:
    dir: str | None = None
    """Checkpoint directory; None derives `<logging.dir>/checkpoints`."""
    save_interval: int = 10
    """Save every N iterations (and at the end, and on SIGTERM/SIGUSR1)."""
    resume: Literal["auto", "never"] = "auto"
    """`auto`: continue from the latest checkpoint in `dir` if one exists."""
    keep_last: int = 2
    """Checkpoints kept on disk (older ones are deleted after a successful save)."""
    save_stage_switches: bool = False
    """Also save the weights at every Iterative-SPO stage switch, to
    `<dir>/stage_switches/iter_XXXXXXX_<from>_to_<to>` (kept; the clue-stage evaluation
    judges each clue stage against the observer frozen at its start)."""


@dataclass(kw_only=True, slots=True)
class LoggingConfig:
    dir: str = "runs/default"
    """Run directory: metrics JSONL, report, checkpoints (unless overridden)."""
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """wandb mode; offline unless the user configures otherwise (never blocks on network)."""
    wandb_project: str = "vzero_nemo"
    run_name: str | None = None
    """Run name; None derives it from the recipe."""
    tags: tuple[str, ...] = ()
    """wandb tags."""
    progress_bar: bool = True
    """Console progress bar."""


@dataclass(kw_only=True, slots=True)
class VZeroConfig:
    recipe: str = "base"
    """Name of the recipe that built this config (recorded in checkpoints)."""
    preset: Literal["paper", "official_code"] = "paper"
    """Which reading of the method: `paper` (default) or `official_code`."""
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    game: GameConfig = field(default_factory=GameConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    spo: SPOConfig = field(default_factory=SPOConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    world_size: int | None = None
    """Derived by `finalize` (number of processes)."""

    # ------------------------------------------------------------------ derived views
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format(self) -> str:
        """Human-readable `key = value` listing of every field (the resolved config)."""
        return "\n".join(f"{k} = {v!r}" for k, v in flatten(self).items())

    def apply_overrides(self, overrides: list[str]) -> VZeroConfig:
        apply_overrides(self, overrides)
        return self

    def finalize(self, world_size: int = 1) -> VZeroConfig:
        finalize(self, world_size)
        return self


# ---------------------------------------------------------------------- presets

# `paper` (our defaults) and `official_code` give every point where the two readings differ;
# `official_code` also pins what the official game cannot change (one spy, observer votes,
# N/A allowed, 2 clue rounds, one optimizer step per batch of games).
# docs/official_code.md cites the official line behind each.
PRESET_FIELDS: dict[str, dict[str, Any]] = {
    "paper": {
        "game.answer_format": "think_answer",
        "game.answer_parser": "strict",
        "game.format_flag": "strict",
        "grpo.decision_reward": "paper",
        "grpo.group_std": "sample",
        "grpo.rae_alpha": 0.95,
        "grpo.rae_update": "iteration",
        "grpo.loss_aggregation": "global_token",
        "spo.schedule": "iterative",
        "spo.clue_stage_trains_votes": False,
    },
    "official_code": {
        "game.answer_format": "boxed",
        "game.answer_parser": "official",
        "game.format_flag": "official",
        "game.num_clue_rounds": 2,
        "game.num_spies": 1,
        "game.vote_mode": "observer",
        "game.allow_na": True,
        "grpo.decision_reward": "official_code",
        "grpo.std_normalize": True,
        "grpo.group_std": "population",
        "grpo.rae_alpha": 0.9,
        "grpo.rae_subtract": "updated",
        "grpo.rae_update": "game",
        "grpo.loss_aggregation": "sequence_mean",
        "spo.schedule": "alternate",
        "spo.start_stage": "decision",
        "spo.cycle_length": 1,
        "spo.clue_stage_trains_votes": True,
        "train.steps_per_iteration": 1,
    },
}


def apply_preset(cfg: VZeroConfig, preset: str) -> None:
    if preset not in PRESET_FIELDS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESET_FIELDS)}")
    cfg.preset = preset  # type: ignore[assignment]
    for key, value in PRESET_FIELDS[preset].items():
        set_value(cfg, key, value)


# ---------------------------------------------------------------------- overrides


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """All leaf fields of a config dataclass as {dotted.key: value}."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _field_type(obj: Any, name: str) -> Any:
    return typing.get_type_hints(type(obj))[name]


def _resolve(cfg: Any, key: str) -> tuple[Any, str]:
    """Return (parent dataclass, leaf name) for a dotted key, or raise with suggestions."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            valid = list(flatten(cfg))
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
            if not close:
                close = [v for v in valid if v.endswith("." + parts[-1])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}")
        value = getattr(node, part)
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(value):
                raise ValueError(
                    f"config key {key!r} is a section, not a value; set one of its fields, "
                    f"e.g. {key}.{dataclasses.fields(value)[0].name}=..."
                )
            return node, part
        if not dataclasses.is_dataclass(value):
            raise ValueError(f"config key {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = value
    raise AssertionError("unreachable")


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"null", "none", "~"}


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Convert an override's text to the field's annotated type, or raise ValueError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in _NONE:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(text, arg, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if text not in args:
            raise ValueError(f"{key}={text!r} is not allowed; choose one of {list(args)}")
        return text
    if origin is tuple:
        body = text.strip()
        if (
            body.startswith("[")
            and body.endswith("]")
            or body.startswith("(")
            and body.endswith(")")
        ):
            body = body[1:-1]
        items = [s.strip() for s in body.split(",") if s.strip()]
        return tuple(parse_value(s, args[0], key) for s in items)
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{key}={text!r} is not a boolean; use true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a number") from None
    if tp is str:
        return text
    raise ValueError(f"{key}: unsupported field type {tp!r}")


def _check_type(value: Any, tp: Any, key: str) -> Any:
    """Type-check a Python value set programmatically (recipes, presets)."""
    return parse_value(value, tp, key) if isinstance(value, str) else _coerce(value, tp, key)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError:
                pass
        raise ValueError(f"{key}={value!r} does not match type {tp}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key}={value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}={value!r} is not a sequence")
        return tuple(_coerce(v, args[0], key) for v in value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    raise ValueError(f"{key}={value!r} is not of type {getattr(tp, '__name__', tp)}")


def set_value(cfg: VZeroConfig, key: str, value: Any) -> None:
    """Set one dotted field, type-checked (`value` may be override text or a Python value)."""
    parent, name = _resolve(cfg, key)
    tp = _field_type(parent, name)
    setattr(parent, name, _check_type(value, tp, key))


def apply_overrides(cfg: VZeroConfig, overrides: list[str]) -> None:
    """Apply `key=value` overrides in order; `preset=...` is applied first."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. train.lr=1e-5)")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        pairs.append((key, value))
    for key, value in pairs:
        if key == "preset":
            apply_preset(cfg, value)
    for key, value in pairs:
        if key != "preset":
            set_value(cfg, key, value)


# ---------------------------------------------------------------------- validation


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def finalize(cfg: VZeroConfig, world_size: int = 1) -> None:
    """Validate the tree and derive values. Raises ValueError naming the bad value."""
    # Re-check every field's type: recipes assign attributes directly.
    for key, value in flatten(cfg).items():
        set_value(cfg, key, value)

    _require(world_size >= 1, f"world_size={world_size} must be >= 1")
    par = cfg.parallel
    tp, pp = par.tensor_model_parallel_size, par.pipeline_model_parallel_size
    _require(tp >= 1, f"parallel.tensor_model_parallel_size={tp} must be >= 1")
    _require(pp >= 1, f"parallel.pipeline_model_parallel_size={pp} must be >= 1")
    _require(
        world_size % (tp * pp) == 0,
        f"world size {world_size} is not divisible by TP*PP = {tp}*{pp} = {tp * pp}; "
        "change parallel.tensor_model_parallel_size / pipeline_model_parallel_size or the "
        "number of processes (a dry-run or plan without WORLD_SIZE: launch.nodes x "
        "launch.gpus_per_node)",
    )
    dp = world_size // (tp * pp)
    _require(
        par.data_parallel_size in (None, dp),
        f"parallel.data_parallel_size={par.data_parallel_size} but world size {world_size} / "
        f"(TP {tp} * PP {pp}) = {dp}; leave it unset to derive it",
    )
    par.data_parallel_size = dp
    cfg.world_size = world_size
    vpp = par.virtual_pipeline_model_parallel_size
    _require(
        vpp is None or (vpp >= 2 and pp >= 2),
        f"parallel.virtual_pipeline_model_parallel_size={vpp} needs >= 2 and PP >= 2",
    )
    _require(
        not par.sequence_parallel or tp > 1,
        "parallel.sequence_parallel=true needs tensor_model_parallel_size > 1",
    )

    g = cfg.game
    _require(g.num_players >= 3, f"game.num_players={g.num_players} must be >= 3")
    _require(g.num_spies >= 1, f"game.num_spies={g.num_spies} must be >= 1")
    _require(
        g.num_players - g.num_spies >= 2 and g.num_spies < g.num_players - g.num_spies,
        f"game.num_spies={g.num_spies} with game.num_players={g.num_players}: spies must be "
        "fewer than civilians, and at least 2 civilians are needed",
    )
    _require(g.num_clue_rounds >= 1, f"game.num_clue_rounds={g.num_clue_rounds} must be >= 1")
    _require(g.num_votes >= 1, f"game.num_votes={g.num_votes} must be >= 1")
    if g.vote_mode == "observer":
        _require(g.num_votes >= 2, f"game.num_votes={g.num_votes}: a GRPO group needs >= 2")

    r = cfg.rollout
    _require(r.temperature > 0, f"rollout.temperature={r.temperature} must be > 0")
    _require(0 < r.top_p <= 1, f"rollout.top_p={r.top_p} must be in (0, 1]")
    _require(r.max_clue_tokens >= 1, f"rollout.max_clue_tokens={r.max_clue_tokens} must be >= 1")
    _require(r.max_vote_tokens >= 1, f"rollout.max_vote_tokens={r.max_vote_tokens} must be >= 1")
    _require(r.max_batch >= 1, f"rollout.max_batch={r.max_batch} must be >= 1")

    a = cfg.grpo
    _require(0 <= a.rae_alpha < 1, f"grpo.rae_alpha={a.rae_alpha} must be in [0, 1)")
    _require(0 <= a.clip_eps_low < 1, f"grpo.clip_eps_low={a.clip_eps_low} must be in [0, 1)")
    _require(a.clip_eps_high >= 0, f"grpo.clip_eps_high={a.clip_eps_high} must be >= 0")
    _require(a.kl_coef >= 0, f"grpo.kl_coef={a.kl_coef} must be >= 0")
    _require(a.beta >= 0 and a.lam >= 0, f"grpo.beta={a.beta}, grpo.lam={a.lam} must be >= 0")

    s = cfg.spo
    _require(0 <= s.ema_rho < 1, f"spo.ema_rho={s.ema_rho} must be in [0, 1)")
    _require(s.min_dwell >= 1, f"spo.min_dwell={s.min_dwell} must be >= 1")
    _require(s.cycle_length >= 1, f"spo.cycle_length={s.cycle_length} must be >= 1")

    d = cfg.data
    _require(
        d.games_per_iteration >= 1,
        f"data.games_per_iteration={d.games_per_iteration} must be >= 1",
    )
    _require(
        d.games_per_iteration % dp == 0,
        f"data.games_per_iteration={d.games_per_iteration} is not divisible by the "
        f"data-parallel size {dp}; use a multiple of {dp}",
    )
    if d.seed is None:
        d.seed = cfg.train.seed

    t = cfg.train
    _require(t.iterations >= 1, f"train.iterations={t.iterations} must be >= 1")
    _require(t.lr > 0, f"train.lr={t.lr} must be > 0")
    _require(0 <= t.min_lr <= t.lr, f"train.min_lr={t.min_lr} must be in [0, train.lr]")
    _require(
        0 <= t.warmup_fraction < 1,
        f"train.warmup_fraction={t.warmup_fraction} must be in [0, 1)",
    )
    _require(t.micro_batch_size >= 1, f"train.micro_batch_size={t.micro_batch_size} must be >= 1")
    _require(
        t.steps_per_iteration >= 1,
        f"train.steps_per_iteration={t.steps_per_iteration} must be >= 1",
    )
    _require(t.grad_clip > 0, f"train.grad_clip={t.grad_clip} must be > 0")
    _require(
        t.max_consecutive_nonfinite >= 1,
        f"train.max_consecutive_nonfinite={t.max_consecutive_nonfinite} must be >= 1",
    )

    pt = cfg.pretrain
    _require(pt.steps >= 1, f"pretrain.steps={pt.steps} must be >= 1")
    _require(pt.batch_size >= 1, f"pretrain.batch_size={pt.batch_size} must be >= 1")
    _require(pt.num_pairs >= 1, f"pretrain.num_pairs={pt.num_pairs} must be >= 1")
    _require(pt.lr > 0, f"pretrain.lr={pt.lr} must be > 0")
    _require(
        0 <= pt.warmup_fraction < 1,
        f"pretrain.warmup_fraction={pt.warmup_fraction} must be in [0, 1)",
    )
    unknown = [t for t in pt.tasks if t not in PRETRAIN_TASKS]
    _require(
        bool(pt.tasks) and not unknown,
        f"pretrain.tasks={list(pt.tasks)}: unknown {unknown}; choose from {list(PRETRAIN_TASKS)}",
    )
    _require(0 <= pt.agree_rate <= 1, f"pretrain.agree_rate={pt.agree_rate} must be in [0, 1]")
    _require(pt.eval_pairs >= 0, f"pretrain.eval_pairs={pt.eval_pairs} must be >= 0")
    _require(pt.eval_every >= 0, f"pretrain.eval_every={pt.eval_every} must be >= 0")
    ev = cfg.eval
    _require(ev.games >= 1, f"eval.games={ev.games} must be >= 1")
    _require(ev.retention_items >= 0, f"eval.retention_items={ev.retention_items} must be >= 0")
    _require(ev.sample_games >= 0, f"eval.sample_games={ev.sample_games} must be >= 0")

    m = cfg.model
    _require(m.seq_length >= 16, f"model.seq_length={m.seq_length} must be >= 16")
    _require(
        0 < m.min_pixels <= m.max_pixels,
        f"model.min_pixels={m.min_pixels} must be > 0 and <= model.max_pixels={m.max_pixels}",
    )
    _require(
        m.size != "auto" or m.hf_path is not None,
        "model.size=auto reads the dimensions from model.hf_path/config.json; set model.hf_path",
    )
    _require(
        uses_project_tokenizer(m.size) or m.hf_path is not None or m.init_checkpoint is not None,
        f"model.size={m.size} needs model.hf_path (a local HF checkpoint directory) or "
        "model.init_checkpoint; weights are never downloaded",
    )

    la = cfg.launch
    _require(la.nodes >= 1, f"launch.nodes={la.nodes} must be >= 1")
    _require(la.gpus_per_node >= 1, f"launch.gpus_per_node={la.gpus_per_node} must be >= 1")

    c = cfg.checkpoint
    _require(c.save_interval >= 1, f"checkpoint.save_interval={c.save_interval} must be >= 1")
    _require(c.keep_last >= 1, f"checkpoint.keep_last={c.keep_last} must be >= 1")
    if c.dir is None:
        c.dir = f"{cfg.logging.dir}/checkpoints"
    if cfg.logging.run_name is None:
        cfg.logging.run_name = cfg.recipe
