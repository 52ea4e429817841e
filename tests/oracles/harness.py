"""Our side of the differential tests: a Trainer for `assign_advantages` (the parts it does not
use are left empty) and one batch of games played with messy texts, wrapped as a Rollout."""

from __future__ import annotations

import random

import torch

from tests.oracles.messy_texts import messy_clue, messy_vote
from vzero_nemo.config import VZeroConfig
from vzero_nemo.game.env import GameBatch
from vzero_nemo.game.synthetic import random_truths
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.parallel.groups import ParallelState
from vzero_nemo.training.batching import TrainSequence
from vzero_nemo.training.rollout import Rollout
from vzero_nemo.training.trainer import Trainer, new_state


def make_trainer(par: ParallelState, games_per_iteration: int, *overrides: str) -> Trainer:
    """A Trainer over the real config, parallel state and trainer state; no model."""
    cfg = VZeroConfig().apply_overrides([f"data.games_per_iteration={games_per_iteration}"])
    cfg.apply_overrides(list(overrides))
    cfg.finalize(par.world_size)
    return Trainer(
        cfg=cfg,
        par=par,
        tokenizer=None,
        policy=[],
        reference=[],
        optimizer=None,
        scheduler=None,
        source=None,
        state=new_state(cfg, "differential"),
    )


def play(
    cfg: VZeroConfig, num_games: int, seed: int, rng: random.Random
) -> tuple[GameBatch, Rollout, dict[str, str]]:
    """One batch of games with messy clue and vote texts, wrapped as the trainer's Rollout."""
    truths = random_truths("clevr", num_games, seed)
    env = GameBatch(truths, cfg.game, seed, grpo=cfg.grpo)
    completions: dict[str, str] = {}
    while not env.done:
        make = messy_clue if env.stage == "clue" else messy_vote
        turn = {r.request_id: make(rng) for r in env.pending_requests()}
        env.submit(turn)
        completions.update(turn)
    prompt = PromptInputs(torch.zeros(1, dtype=torch.long), torch.zeros(1, 1), torch.ones(3))
    samples = env.training_samples()
    sequences = {s.request_id: TrainSequence(prompt, [0], [0.0]) for s in samples}
    return env, Rollout(env, samples, sequences, 0, completions), completions
