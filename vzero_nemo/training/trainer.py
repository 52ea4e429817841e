"""The Iterative-SPO trainer: state, setup, one iteration as named steps, checkpoints.

One iteration (`run_iteration`), six named steps, each a timer (`time/<step>_s` metrics):

    data        next_pairs
    rollout     play_games (clue turns, then votes; one generation call per turn)
    advantages  reduce_game_metrics (exact sums over DP ranks), assign_advantages (RAE for
                clue samples, group z-scores / means for votes)
    logprobs    score_reference (frozen reference log-probs of the trained tokens)
    train       train_step (megatron-core schedule, per-token loss over the global batch, AdamW)
    controller  Iterative-SPO decides the next stage; the iteration's metrics

`train.profile=true` prints each iteration's timers as a table, down to the prefill and
decode of each turn, the vision tower, forward/backward and the optimizer
(`vzero_nemo.profiling`); `train.profile_trace_dir=DIR` also writes a torch profiler trace.

Both stages are rolled out every iteration (clue rewards need votes); only the active stage's
samples get gradients (clue stages also train the votes with spo.clue_stage_trains_votes). The
RAE baselines are updated every iteration (or once per game slot, grpo.rae_update=game) from
the global clue rewards, so they track the current reward level when the clue stage becomes
active.
Per-iteration seeds (spy seats, sampling) derive from (train.seed, iteration, DP rank), so a
resumed run repeats the uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from vzero_nemo.algorithms.advantages import (
    RoleBaselines,
    game_role_means,
    group_advantages,
    group_index,
    role_weights,
)
from vzero_nemo.algorithms.losses import policy_loss
from vzero_nemo.algorithms.spo import StageController
from vzero_nemo.config import VZeroConfig
from vzero_nemo.game.env import TrainingSample
from vzero_nemo.generation.score import score_responses
from vzero_nemo.parallel.groups import ParallelState, all_reduce_max, all_reduce_sum
from vzero_nemo.profiling import Timers, format_profile, trace
from vzero_nemo.training import checkpoint as ckpt
from vzero_nemo.training import engine
from vzero_nemo.training.batching import (
    MicroBatch,
    TrainSequence,
    make_micro_batches,
    make_shared_prompt_micro_batches,
)
from vzero_nemo.training.data_source import GameSource
from vzero_nemo.training.metrics_log import MetricsLogger
from vzero_nemo.training.rollout import Rollout, play_games
from vzero_nemo.training.rollout_metrics import reduce_game_metrics, response_stats

# Checkpoint fields that must match to resume; TP/PP changes are resharded by
# dist-checkpointing.
RESHARDABLE = ("tensor_model_parallel_size", "pipeline_model_parallel_size")


def iteration_seed(base_seed: int, iteration: int, dp_rank: int) -> int:
    """Seed of one iteration's spy seats and sampling on one DP rank (all TP/PP ranks of
    the same DP rank agree)."""
    return (base_seed * 1_000_003 + iteration * 7919 + dp_rank * 104_729) % (2**31 - 1)


@dataclass(slots=True)
class TrainerState:
    """Everything besides weights, optimizer, LR schedule and data position that a resumed
    run needs. `state_dict()` / `load_state_dict()` cover every field generically (a field
    with its own `state_dict` delegates to it), so a new field is saved and restored without
    touching them; `load_state_dict` rejects a dict whose keys differ from the fields."""

    iteration: int = 0
    """Completed iterations."""
    baselines: RoleBaselines = field(default_factory=RoleBaselines)
    controller: StageController | None = None
    run_id: str = ""
    nonfinite_in_a_row: int = 0
    skipped_steps: int = 0

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.state_dict() if hasattr(value, "state_dict") else value
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {f.name for f in fields(self)}
        if set(state) != expected:
            raise ValueError(
                f"trainer state keys {sorted(state)} != expected {sorted(expected)}; the "
                "checkpoint comes from another version of the trainer"
            )
        for name in expected:
            current = getattr(self, name)
            if hasattr(current, "load_state_dict"):
                current.load_state_dict(state[name])
            else:
                setattr(self, name, type(current)(state[name]))


@dataclass(slots=True)
class Trainer:
    cfg: VZeroConfig
    par: ParallelState
    tokenizer: Any
    policy: list[Any]
    """DDP-wrapped model chunks (one per virtual pipeline stage)."""
    reference: list[Any]
    """The frozen initial policy (eval mode, no grads)."""
    optimizer: Any
    scheduler: Any
    source: GameSource
    state: TrainerState
    logger: MetricsLogger | None = None
    timers: Timers = field(default_factory=Timers)
    """Wall-clock totals of the named steps (`run_iteration`, `save`)."""

    @property
    def games_per_rank(self) -> int:
        return self.cfg.data.games_per_iteration // self.par.dp_size

    def meta(self) -> dict[str, Any]:
        p = self.cfg.parallel
        return {
            "recipe": self.cfg.recipe,
            "model_size": self.cfg.model.size,
            "vocab_size": len(self.tokenizer),
            "tensor_model_parallel_size": p.tensor_model_parallel_size,
            "pipeline_model_parallel_size": p.pipeline_model_parallel_size,
            "data_parallel_size": p.data_parallel_size,
        }


# ---------------------------------------------------------------------- one iteration


@dataclass(slots=True)
class IterationResult:
    metrics: dict[str, float]
    rollout: Rollout
    trained: list[TrainSequence] = field(default_factory=list)
    """The sequences the iteration's optimizer steps trained on (`assign_advantages`)."""


def _clue_advantages(tr: Trainer, rollout: Rollout, clue: list[TrainingSample]) -> list[float]:
    """RAE advantages r - b(role) of the clue samples `clue` (one EMA step per iteration, or
    one per game slot with `grpo.rae_update=game`); every rank takes the same steps. With
    `grpo.rae_role_weight=role` / `spy_only` each role's advantages are then scaled to half /
    all (spy) and half / none (civilians) of the total weight."""
    rewards = torch.tensor([s.reward for s in clue], dtype=torch.float64)
    is_spy = torch.tensor([s.role == "spy" for s in clue], dtype=torch.bool)
    baselines = tr.state.baselines
    sums = torch.tensor(
        [
            sum(s.reward for s in clue if s.role == "spy"),
            sum(1 for s in clue if s.role == "spy"),
            sum(s.reward for s in clue if s.role != "spy"),
            sum(1 for s in clue if s.role != "spy"),
        ],
        dtype=torch.float64,
    )
    g = all_reduce_sum(sums).tolist()
    if tr.cfg.grpo.rae_update == "game":
        # Official cadence: the k-th game of every DP rank is one micro-step's global batch.
        game = torch.tensor([s.game_index for s in clue], dtype=torch.long)
        means = game_role_means(rewards, is_spy, game, rollout.env.num_games)
        used = baselines.update_per_game(all_reduce_sum(means) / tr.par.dp_size)
        advantages = rewards - used[game, (~is_spy).long()]
    else:
        baselines.update(g[0] / max(g[1], 1.0), g[2] / max(g[3], 1.0))
        advantages = baselines.advantages(rewards, is_spy)
    share = {"role": 0.5, "spy_only": 1.0}.get(tr.cfg.grpo.rae_role_weight)
    if share is not None:
        advantages = advantages * role_weights(is_spy, g[1], g[3], spy_share=share)
    return advantages.tolist()


def assign_advantages(tr: Trainer, rollout: Rollout, stage: str) -> list[TrainSequence]:
    """Advantages of every sample; returns the sequences to train: the active stage's, and in
    clue stages also the votes when `spo.clue_stage_trains_votes` (official code)."""
    cfg = tr.cfg
    clue = [s for s in rollout.samples if s.stage == "clue"]
    votes = [s for s in rollout.samples if s.stage == "decision"]
    # The baselines step on every clue sample; scripted clue turns have no tokens to train.
    for s, a in zip(clue, _clue_advantages(tr, rollout, clue)):
        if s.request_id in rollout.sequences:
            rollout.sequences[s.request_id].advantage = a
    clue = [s for s in clue if s.request_id in rollout.sequences]
    if votes:
        index, _ = group_index([s.group_id for s in votes])
        adv = group_advantages(
            torch.tensor([s.reward for s in votes], dtype=torch.float64),
            index,
            std_normalize=cfg.grpo.std_normalize,
            group_std=cfg.grpo.group_std,
        )
        for s, a in zip(votes, adv.tolist()):
            rollout.sequences[s.request_id].advantage = a
    active = votes
    if stage == "clue":
        active = clue + votes if cfg.spo.clue_stage_trains_votes else clue
    for s in active:
        rollout.sequences[s.request_id].meta = {"role": s.role, "stage": s.stage}
    return [rollout.sequences[s.request_id] for s in active]


def _micro_batches(tr: Trainer, sequences: list[TrainSequence]) -> list[MicroBatch]:
    make = make_shared_prompt_micro_batches if tr.cfg.train.share_prompts else make_micro_batches
    return make(sequences, tr.tokenizer, tr.cfg.model, tr.cfg.train.micro_batch_size)


def split_minibatches(
    sequences: list[TrainSequence], k: int, run: int
) -> list[list[TrainSequence]]:
    """`k` mini-batches of `sequences`: runs of `run` consecutive sequences dealt round-robin
    (`train.minibatch_run`; run 1 is `sequences[i::k]`)."""
    runs = [sequences[start : start + run] for start in range(0, len(sequences), run)]
    return [[s for r in runs[i::k] for s in r] for i in range(k)]


def score_reference(tr: Trainer, sequences: list[TrainSequence]) -> None:
    """Fill `ref_logp` of each sequence with the frozen reference's log-probs (last stage)."""
    if tr.cfg.grpo.kl_coef == 0 or not sequences:
        return
    with reference_on_device(tr):
        logps = score_sequences(tr, tr.reference, sequences)
    for seq, logp in zip(sequences, logps):
        seq.ref_logp = logp


def score_sequences(tr: Trainer, model, sequences: list[TrainSequence]) -> list[list[float]]:
    """`model`'s log-prob of every response token of `sequences` (last stage). KV-cached: the
    num_votes responses of a game share one prefill of their prompt."""
    return score_responses(
        model,
        [s.prompt for s in sequences],
        [s.response_ids for s in sequences],
        tr.tokenizer,
        tr.cfg.model,
        max_batch=tr.cfg.rollout.max_batch,
    )


class reference_on_device:
    """Move an offloaded reference model onto the GPU for its forward, then back."""

    def __init__(self, tr: Trainer) -> None:
        self.tr = tr
        self.offload = tr.cfg.model.offload_reference and tr.par.device.type == "cuda"

    def __enter__(self) -> None:
        if self.offload:
            for chunk in self.tr.reference:
                chunk.to(self.tr.par.device)

    def __exit__(self, *exc) -> None:
        if self.offload:
            for chunk in self.tr.reference:
                chunk.to("cpu")
            torch.cuda.empty_cache()


def train_step(tr: Trainer, sequences: list[TrainSequence]) -> dict[str, float]:
    """Forward/backward of the active stage's sequences and `train.steps_per_iteration`
    optimizer steps, one per mini-batch (`split_minibatches`, `train.minibatch_run`).

    A non-finite loss or gradient skips that step (counted); `train.max_consecutive_nonfinite`
    skipped steps in a row abort the run. Metrics are token-weighted over all mini-batches;
    `train/step_applied` is the fraction of steps applied, `train/grad_norm` their mean."""
    if not sequences:  # e.g. the clue stage with scripted clues: nothing to learn from
        return {"train/step_applied": 0.0, "train/grad_norm": float("nan")}
    # Every DP rank must take the same number of steps: split by the smallest local batch.
    k = min(tr.cfg.train.steps_per_iteration, len(sequences))
    k = int(-all_reduce_max(-float(k)))
    raw: list[dict[str, torch.Tensor]] = []
    norms: list[float] = []
    for minibatch in split_minibatches(sequences, k, tr.cfg.train.minibatch_run):
        step_raw, grad_norm = _minibatch_step(tr, minibatch)
        raw += step_raw
        if grad_norm is not None:
            norms.append(grad_norm)
    out = {f"train/{name}": v for name, v in engine.reduce_metrics(raw).items()}
    out["train/step_applied"] = len(norms) / k
    out["train/grad_norm"] = sum(norms) / len(norms) if norms else float("nan")
    return out


def _minibatch_step(
    tr: Trainer, sequences: list[TrainSequence]
) -> tuple[list[dict[str, torch.Tensor]], float | None]:
    """One forward/backward + optimizer step: (raw metric sums, grad norm or None if skipped)."""
    cfg = tr.cfg

    def loss_fn(mb: MicroBatch, ce_BT: torch.Tensor):
        logp_BT = -ce_BT.float()
        loss, units, metrics = policy_loss(
            logp_BT,
            mb.advantages,
            mb.loss_mask,
            cfg.grpo,
            old_logp_BT=mb.old_logp,
            ref_logp_BT=mb.ref_logp,
        )
        metrics["loss"] = torch.stack([loss.detach(), units.to(loss.dtype)])
        old_gap = ((logp_BT.detach() - mb.old_logp).abs() * mb.loss_mask).sum()
        metrics["old_logp_abs_diff"] = torch.stack([old_gap, mb.loss_mask.sum()])
        return loss, units.round().to(torch.int), metrics

    engine.zero_grads(tr.policy, tr.optimizer)
    result = engine.run_schedule(
        tr.policy, _micro_batches(tr, sequences), loss_fn, forward_only=False, device=tr.par.device
    )
    loss = engine.reduce_metrics(result.metrics).get("loss", 0.0)
    if engine.grads_are_finite(tr.policy) and abs(loss) != float("inf") and loss == loss:
        tr.state.nonfinite_in_a_row = 0
        applied, grad_norm = engine.optimizer_step(tr.optimizer, tr.scheduler)
        return result.metrics, grad_norm if applied else None
    tr.state.nonfinite_in_a_row += 1
    tr.state.skipped_steps += 1
    engine.zero_grads(tr.policy, tr.optimizer)
    if tr.state.nonfinite_in_a_row >= cfg.train.max_consecutive_nonfinite:
        raise FloatingPointError(
            f"{tr.state.nonfinite_in_a_row} consecutive steps with a non-finite loss or "
            "gradient (train.max_consecutive_nonfinite); lower train.lr or inspect the data"
        )
    return result.metrics, None


def run_iteration(tr: Trainer) -> IterationResult:
    """One iteration as its six named steps, each timed (`tr.timers`, `time/*` metrics)."""
    cfg, st, timers = tr.cfg, tr.state, tr.timers
    assert st.controller is not None
    # Scripted clues have no tokens to train: only the decision stage learns.
    stage = st.controller.stage if cfg.rollout.clue_policy == "model" else "decision"
    seed = iteration_seed(cfg.train.seed, st.iteration, tr.par.dp_rank)
    with timers.active(), _trace_scope(tr), timers("iteration"):
        with timers("data"):
            pairs = tr.source.next_pairs(tr.games_per_rank)
        with timers("rollout"):
            generator = torch.Generator().manual_seed(seed)
            rollout = play_games(
                tr.policy, pairs, cfg, tr.tokenizer, seed=seed, generator=generator
            )
        with timers("advantages"):
            metrics = reduce_game_metrics(rollout.env.metrics())
            sequences = assign_advantages(tr, rollout, stage)
        with timers("logprobs"):
            score_reference(tr, sequences)
        with timers("train"):
            metrics.update(train_step(tr, sequences))
        with timers("controller"):
            next_stage = st.controller.update(
                metrics["game/decision_accuracy"], metrics["game/na_rate"]
            )
            metrics.update(_iteration_metrics(tr, rollout, sequences, stage, next_stage))
    st.iteration += 1
    metrics["iteration"] = st.iteration
    metrics.update(_timing_metrics(tr))
    return IterationResult(metrics=metrics, rollout=rollout, trained=sequences)


def _iteration_metrics(
    tr: Trainer, rollout: Rollout, sequences: list[TrainSequence], stage: str, next_stage: str
) -> dict[str, Any]:
    st = tr.state
    assert st.controller is not None
    # One all-reduce for the two global counts.
    generated, trained = all_reduce_sum(
        torch.tensor([rollout.num_generated_tokens, len(sequences)], dtype=torch.float64)
    ).tolist()
    rollout_s = max(tr.timers.totals["iteration/rollout"], 1e-9)
    return {
        **response_stats(rollout),
        **st.controller.metrics(),
        "stage": stage,
        "next_stage": next_stage,
        "rae/baseline_spy": st.baselines.level("spy"),
        "rae/baseline_civilian": st.baselines.level("civilian"),
        "train/lr": tr.optimizer.param_groups[0]["lr"],
        "train/num_sequences": trained,
        "train/skipped_steps": float(st.skipped_steps),
        "data/corrupt_shards": float(tr.source.num_corrupt_shards),
        "perf/rollout_tokens_per_s": generated / rollout_s,
    }


def _timing_metrics(tr: Trainer) -> dict[str, float]:
    """`time/<step>_s` for every timed block of the iteration (`time/iteration_s`,
    `time/rollout_s`, nested blocks as `time/rollout/decision/prefill_s`; `time/checkpoint_s`
    is the save after the previous iteration); `time/other_s` is the iteration outside
    rollout, log-probs and training.
    With `train.profile` the table is printed too."""
    lap = tr.timers.lap()
    totals = lap.wall_s
    out = {f"time/{key.removeprefix('iteration/')}_s": s for key, s in totals.items()}
    out["time/iteration_cpu_s"] = lap.cpu_s["iteration"]
    out["time/other_s"] = totals["iteration"] - sum(
        totals[f"iteration/{k}"] for k in ("rollout", "logprobs", "train")
    )
    if tr.cfg.train.profile and tr.par.is_main:
        title = f"[profile] iteration {tr.state.iteration} (rank {tr.par.rank})"
        print(format_profile(lap, title), flush=True)
    return out


def _trace_scope(tr: Trainer) -> contextlib.AbstractContextManager:
    """A torch profiler trace of this process's second iteration (its first when it runs
    only one) when `train.profile_trace_dir` is set."""
    trace_dir = tr.cfg.train.profile_trace_dir
    last = tr.state.iteration + 1 >= tr.cfg.train.iterations
    if trace_dir is None or not (tr.timers.laps == 1 or (tr.timers.laps == 0 and last)):
        return contextlib.nullcontext()
    return trace(trace_dir, f"iteration{tr.state.iteration + 1}_rank{tr.par.rank}")


# ---------------------------------------------------------------------- checkpoints


def sharded_state_dict(tr: Trainer, *, loading: bool = False) -> dict[str, Any]:
    sd = ckpt.model_sharded_state_dict(tr.policy)
    sd["optimizer"] = tr.optimizer.sharded_state_dict(sd, is_loading=loading)
    return sd


def save(tr: Trainer) -> Path:
    from vzero_nemo.parallel.groups import all_gather_objects

    with tr.timers("checkpoint"):  # reported with the next iteration's times
        data_states = all_gather_objects(tr.source.state_dict(), group="dp")
        state = {
            **tr.state.state_dict(),
            "data": data_states,
            "scheduler": tr.scheduler.state_dict(),
        }
        with engine.compat_scope():
            path = ckpt.save_checkpoint(
                tr.cfg.checkpoint.dir,
                tr.state.iteration,
                sharded_state_dict(tr),
                state,
                tr.meta(),
                tr.cfg.checkpoint.keep_last,
            )
    return path


def resume(tr: Trainer, path: Path) -> list[str]:
    """Load weights, optimizer and trainer state from `path`; returns resharded fields."""
    resharded = ckpt.check_meta(path, tr.meta(), RESHARDABLE)
    state = ckpt.read_trainer_state(path)
    if len(state["data"]) != tr.par.dp_size:
        raise ckpt.CheckpointMismatch(
            f"checkpoint {path} holds data positions of {len(state['data'])} DP ranks, this run "
            f"has {tr.par.dp_size}; resume with the same data-parallel size"
        )
    with engine.compat_scope():
        loaded = ckpt.load_checkpoint(path, sharded_state_dict(tr, loading=True))
    ckpt.load_model_state(tr.policy, loaded)
    tr.optimizer.load_state_dict(loaded["optimizer"])
    tr.scheduler.load_state_dict(state["scheduler"])
    tr.source.load_state_dict(state["data"][tr.par.dp_rank])
    assert tr.state.controller is not None
    tr.state.load_state_dict({k: v for k, v in state.items() if k not in ("data", "scheduler")})
    return resharded


def new_timers(cfg: VZeroConfig) -> Timers:
    """The run's timers: device-synchronised with `train.profile`, named trace ranges with
    `train.profile_trace_dir`."""
    return Timers(
        sync_cuda=cfg.train.profile, record_functions=cfg.train.profile_trace_dir is not None
    )


def new_state(cfg: VZeroConfig, run_id: str) -> TrainerState:
    return TrainerState(
        baselines=RoleBaselines.from_config(cfg.grpo),
        controller=StageController(cfg.spo),
        run_id=run_id,
    )
