"""Config sections of a run's schedule and outputs: `data`, `train`, `pretrain`, `eval`,
`checkpoint`, `logging`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vzero_nemo.config.checks import require

PRETRAIN_TASKS = ("caption", "describe", "exists", "vote", "wrong")


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

    def validate(self) -> None:
        """`games_per_iteration` on its own; `finalize` checks it against the DP size."""
        require(
            self.games_per_iteration >= 1,
            f"data.games_per_iteration={self.games_per_iteration} must be >= 1",
        )


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
    mini-batches (dealt as `minibatch_run` says: each holds a share of every game), one AdamW step
    each; the clipped ratio against the rollout's log-probs bounds the later, slightly
    off-policy steps (PPO-style). The LR schedule counts optimizer steps."""
    minibatch_run: int = 1
    """How the active stage's samples (game-major: a game's `num_votes` observer samples are
    consecutive) are dealt to the `steps_per_iteration` mini-batches: in runs of this many
    consecutive samples, round-robin. 1: `samples[i::k]`, each mini-batch a share of every
    game; r > 1 keeps r samples of a game together, which `share_prompts` computes as one
    prompt (2 on the tiny recipe: each step then holds 8 games x 2 votes instead of
    16 x 1). Whole games per mini-batch (r = num_votes) left one of two tiny seeds without
    any gain: each AdamW step then follows the noisy gradient of two images."""
    share_prompts: bool = False
    """Training micro-batches compute a prompt shared by several samples (the observer's
    `num_votes` votes of a game) once: one packed row per prompt, each response attending
    to it and to itself (`make_shared_prompt_micro_batches`; the log-probs and gradient of
    the padded layout). Needs an attention that applies arbitrary masks (the local layer
    spec with SDPA; not transformer-engine's causal-only fused attention) and
    `grpo.loss_aggregation=global_token`."""
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

    def validate(self) -> None:
        require(self.iterations >= 1, f"train.iterations={self.iterations} must be >= 1")
        require(self.lr > 0, f"train.lr={self.lr} must be > 0")
        require(0 <= self.min_lr <= self.lr, f"train.min_lr={self.min_lr} must be in [0, train.lr]")
        require(
            0 <= self.warmup_fraction < 1,
            f"train.warmup_fraction={self.warmup_fraction} must be in [0, 1)",
        )
        for name in ("micro_batch_size", "steps_per_iteration", "minibatch_run"):
            value = getattr(self, name)
            require(value >= 1, f"train.{name}={value} must be >= 1")
        require(self.grad_clip > 0, f"train.grad_clip={self.grad_clip} must be > 0")
        require(
            self.max_consecutive_nonfinite >= 1,
            f"train.max_consecutive_nonfinite={self.max_consecutive_nonfinite} must be >= 1",
        )


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
    vague_rate: float = 0.0
    """Clues of a shape alone ("cube") instead of colour and shape, in describe targets (the
    shape of an object of the image shown, whatever the role) and vote-example clues (true or
    false of the image), at this rate. A vague clue gives the spy a move an edit rarely makes
    false: on the tiny data a spy's shape alone contradicts the civilians' image 15 % of the
    time, its colour alone 34 % and both 43 %. 0 keeps every clue two words."""
    length_groups: int = 2
    """Each batch is sorted by length into this many groups, each padded to its own width
    (`make_length_grouped_micro_batches`; same loss and gradient as one width). Under
    pipeline parallelism, whose point-to-point shapes are fixed, one common width is used."""
    eval_pairs: int = 64
    """Held-out pairs (`val` split) on which the skills are measured at the end."""
    eval_every: int = 0
    """Also measure the skills every N steps (0: only at the end)."""
    seed: int = 0
    """Seed of the example sampler (model init uses `train.seed`)."""

    def validate(self) -> None:
        for name in ("steps", "batch_size", "num_pairs"):
            value = getattr(self, name)
            require(value >= 1, f"pretrain.{name}={value} must be >= 1")
        require(self.lr > 0, f"pretrain.lr={self.lr} must be > 0")
        require(
            0 <= self.warmup_fraction < 1,
            f"pretrain.warmup_fraction={self.warmup_fraction} must be in [0, 1)",
        )
        unknown = [t for t in self.tasks if t not in PRETRAIN_TASKS]
        require(
            bool(self.tasks) and not unknown,
            f"pretrain.tasks={list(self.tasks)}: unknown {unknown}; "
            f"choose from {list(PRETRAIN_TASKS)}",
        )
        require(
            0 <= self.agree_rate <= 1, f"pretrain.agree_rate={self.agree_rate} must be in [0, 1]"
        )
        require(
            0 <= self.vague_rate <= 1, f"pretrain.vague_rate={self.vague_rate} must be in [0, 1]"
        )
        require(
            self.length_groups >= 1, f"pretrain.length_groups={self.length_groups} must be >= 1"
        )
        require(self.eval_pairs >= 0, f"pretrain.eval_pairs={self.eval_pairs} must be >= 0")
        require(self.eval_every >= 0, f"pretrain.eval_every={self.eval_every} must be >= 0")


@dataclass(kw_only=True, slots=True)
class EvalConfig:
    """Held-out evaluation (`python -m vzero_nemo.eval run`; `vzero_nemo.eval.heldout`)."""

    games: int = 64
    """Held-out games from the `val` split, spread evenly over its domains (a domain with
    fewer pairs replays them with other spy seats)."""
    oracle_games: int | None = None
    """Games of the scripted-oracle-clue suite that `eval run --oracle-out` adds (None:
    `eval.games`)."""
    seed: int = 12345
    """Seed of spy seats and sampling in evaluation games."""
    retention_items: int = 256
    """Held-out clevr pairs on which the pre-training skills are probed (0: no probe)."""
    sample_games: int = 4
    """Games whose transcripts and images are kept for the report's game viewer."""

    def validate(self) -> None:
        require(self.games >= 1, f"eval.games={self.games} must be >= 1")
        require(
            self.oracle_games is None or self.oracle_games >= 1,
            f"eval.oracle_games={self.oracle_games} must be >= 1 (or None: eval.games)",
        )
        for name in ("retention_items", "sample_games"):
            value = getattr(self, name)
            require(value >= 0, f"eval.{name}={value} must be >= 0")


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

    def validate(self) -> None:
        """`dir` is derived by `finalize` when unset."""
        require(
            self.save_interval >= 1, f"checkpoint.save_interval={self.save_interval} must be >= 1"
        )
        require(self.keep_last >= 1, f"checkpoint.keep_last={self.keep_last} must be >= 1")


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

    def validate(self) -> None:
        """Any value of each field's type is usable; `run_name` is derived by `finalize`."""
