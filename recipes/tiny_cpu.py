"""The tiny CPU recipe: the whole method on a laptop-class CPU with a few-million-parameter
Qwen2.5-VL of the same architecture, gloo, fp32, no transformer-engine/apex.

    python -m vzero_nemo.train --recipe tiny_cpu data.path=runs/tiny_cpu/data

Differences from the paper's run shape, and why:
- 48x48 CLEVR grid images (3x3 cells of 16 px aligned with the vision patches): a tiny model
  trained from scratch on CPU learns to describe objects on a coarse grid in minutes, while
  free object positions left its descriptions at chance (the game then carries no signal).
- compact prompts, one clue round and short responses: CPU compute is the budget.
- 8 optimizer steps per iteration (train.steps_per_iteration): the 128 observer votes of an
  iteration are split into 8 mini-batches. With one step per iteration, 40 iterations moved
  held-out accuracy by -4 points (+9.5 with 4 steps, +26 with 8), while the clipped ratio
  stayed within 0.2% of 1, so the extra steps stay on-policy in practice.
- each of the 8 mini-batches holds 2 votes of each of 8 games (train.minibatch_run=2), and
  the 2 votes of a game compute their shared prompt once (train.share_prompts): training
  1.3 -> 1.0 s per iteration with the same log-probs and gradient as padding each vote.
  Own-clue gain over 128 held-out games, same pre-trained model, seeds 1234 / 1: +0.240 /
  +0.249 against +0.251 / +0.189 with one vote of every game per mini-batch; whole games
  per mini-batch (minibatch_run=8, 0.86 s) gave -0.003 / +0.271: with two images per AdamW
  step one seed stopped learning.
- memory: `python -m vzero_nemo.plan --recipe tiny_cpu` plans a peak of 0.9 GiB per process
  (training: the 32-row micro-batch of 256 tokens), measured within the errors of
  docs/results/planner_crosscheck.md.
- lr 1e-4 and mean-only decision advantages (std_normalize=false): with 4 players N/A's -0.5
  equals a random vote's expected reward, and z-scored groups with no correct vote drove the
  model onto N/A; mean-only advantages resist that collapse.
- Iterative-SPO thresholds the tiny model can reach. The paper's 0.9 accuracy / 0.4 error are
  set for a 7B model with 4 players; the tiny observer starts at chance (0.25) and reaches
  about 0.45-0.5 in 40 iterations, so under the paper's thresholds it never leaves the
  decision stage and the clue stage, RAE and the switching never train. Here the observer
  hands over at a smoothed accuracy of 0.40 (decision -> clue) and takes back over when the
  smoothed error is >= 0.55 (accuracy <= 0.45), each after at least 5 iterations in a stage;
  between 0.40 and 0.45 the stages alternate every 5 iterations. A first choice of 0.38 for
  the way back (a gap, as in the paper) switched once, at iteration 19, and never back: on
  this model the clue stage RAISED the observer's smoothed accuracy (0.42 -> 0.50 over 21
  clue iterations), the opposite of what the paper's way back waits for. The EMA uses rho
  0.8 with bias correction so that it follows a 40-iteration run (rho 0.95 from 0 lags by
  ~20 iterations). The weights at each switch are kept for the clue evaluation.
"""

from __future__ import annotations

from recipes.base import base_config
from vzero_nemo.config import VZeroConfig


def tiny_cpu() -> VZeroConfig:
    cfg = base_config("tiny_cpu")
    cfg.model.size = "tiny"
    cfg.model.params_dtype = "fp32"
    cfg.model.seq_length = 256
    cfg.model.min_pixels = 48 * 48
    cfg.model.max_pixels = 48 * 48
    cfg.parallel.backend = "gloo"
    cfg.game.prompt_style = "compact"
    cfg.game.num_clue_rounds = 1
    cfg.rollout.max_clue_tokens = 24
    cfg.rollout.max_vote_tokens = 72  # the vote checks every clue against the image
    cfg.grpo.std_normalize = False
    cfg.data.path = "runs/tiny_cpu/data"
    cfg.data.games_per_iteration = 16
    cfg.train.iterations = 40
    cfg.train.lr = 1e-4
    cfg.train.micro_batch_size = 32
    cfg.train.steps_per_iteration = 8
    cfg.train.minibatch_run = 2
    cfg.train.share_prompts = True
    cfg.spo.to_clue_accuracy = 0.40
    cfg.spo.to_decision_error = 0.55
    cfg.spo.ema_rho = 0.8
    cfg.spo.bias_correction = True
    cfg.checkpoint.save_stage_switches = True
    cfg.checkpoint.save_interval = 5
    cfg.logging.wandb_mode = "offline"
    # Pre-training of the tiny model (main job step 2): 1000 steps of 32 examples, ~330 s.
    cfg.pretrain.steps = 1000
    cfg.eval.games = 128
    return cfg


def tiny_cpu_long() -> VZeroConfig:
    """The longer run: 1500 pre-training steps (main job `--long`) and 120 iterations."""
    cfg = tiny_cpu()
    cfg.logging.dir = "runs/tiny_cpu_long"
    cfg.data.path = "runs/tiny_cpu_long/data"
    cfg.train.iterations = 120
    cfg.pretrain.steps = 1500
    return cfg
