"""Config sections of the method: the game, sampling, GRPO and Iterative-SPO (`game`,
`rollout`, `grpo`, `spo`). Where the paper and the official code disagree, the field's
docstring says so (the presets in `vzero_nemo.config.presets` select either reading)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vzero_nemo.config.checks import require

Stage = Literal["decision", "clue"]


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
    spy_knows_edit: bool = False
    """Tell the spy, in its clue prompts, which parts of its image were edited ("Edited:
    blue sphere, red cube."). Not the paper's game (its spy is told only that it is the
    spy): a diagnostic that gives the spy a visible handle on what contradicts the
    civilians' image, to test whether the clue stage can teach a spy to avoid it."""
    clue_plan: bool = False
    """Compact prompts only: a clue is `<think>P</think><answer>A</answer>` with a one-word
    plan P, `agree` (the answer repeats an earlier clue that is true of the speaker's image)
    or `new` (any object of it), instead of the answer alone. Pre-training teaches both plans
    at `pretrain.agree_rate`, for both roles alike; which role prefers which is left to the
    clue stage. The paper's clues reason before they answer: this is that reasoning in its
    smallest form, and it makes repeating an earlier player (the one move that keeps a spy
    who cannot see the edit from contradicting the civilians' image) a choice of one token
    that the clue reward can move per role."""
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

    def validate(self) -> None:
        players, spies = self.num_players, self.num_spies
        require(players >= 3, f"game.num_players={players} must be >= 3")
        require(spies >= 1, f"game.num_spies={spies} must be >= 1")
        require(
            players - spies >= 2 and spies < players - spies,
            f"game.num_spies={spies} with game.num_players={players}: spies must be "
            "fewer than civilians, and at least 2 civilians are needed",
        )
        require(
            self.num_clue_rounds >= 1, f"game.num_clue_rounds={self.num_clue_rounds} must be >= 1"
        )
        require(self.num_votes >= 1, f"game.num_votes={self.num_votes} must be >= 1")
        require(
            not (self.spy_knows_edit and self.spy_image == "blank"),
            "game.spy_knows_edit=true needs game.spy_image=modified: a blank image has no "
            "edited parts to name",
        )
        require(
            not self.clue_plan
            or (self.prompt_style == "compact" and self.answer_format == "think_answer"),
            f"game.clue_plan=true needs game.prompt_style=compact and "
            f"game.answer_format=think_answer (got {self.prompt_style}, {self.answer_format}): "
            "full prompts already ask for free reasoning before the clue",
        )
        if self.vote_mode == "observer":
            require(
                self.num_votes >= 2, f"game.num_votes={self.num_votes}: a GRPO group needs >= 2"
            )


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
    lean_decode: bool = True
    """Decode steps through `generation.decode_step.LeanDecoder`: the layers' arithmetic
    without megatron-core's per-layer orchestration, bit-identical to it (1.2-1.3x faster
    rollouts on the tiny model). Models it does not support (Transformer Engine layers, QK
    norm, MoE, ...) use the layer forward whatever this says; false forces the layer forward."""

    def validate(self) -> None:
        require(self.temperature > 0, f"rollout.temperature={self.temperature} must be > 0")
        require(0 < self.top_p <= 1, f"rollout.top_p={self.top_p} must be in (0, 1]")
        for name in ("max_clue_tokens", "max_vote_tokens", "max_batch"):
            value = getattr(self, name)
            require(value >= 1, f"rollout.{name}={value} must be >= 1")


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
    rae_role_weight: Literal["sample", "role", "spy_only"] = "sample"
    """Weight of each clue sample in the clue loss. `sample` (paper): every clue alike, so the
    civilians, three of every four players, give three quarters of the gradient. `role` (not
    in the paper): each role's advantages are scaled by N / (2 N_role) (global counts), so
    spies and civilians weigh the same in total. A move whose value depends on the role
    (repeating another player's clue pays a spy and costs a civilian, see
    `vzero_nemo.eval.clue_eval`) then is not decided by the civilians' samples alone.
    `spy_only` (a diagnostic): the spy's advantages scaled by N / N_spy, the civilians' by 0,
    so only the spy's samples carry a reward signal (the civilians' keep their KL term)."""
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

    def validate(self) -> None:
        require(0 <= self.rae_alpha < 1, f"grpo.rae_alpha={self.rae_alpha} must be in [0, 1)")
        require(
            0 <= self.clip_eps_low < 1, f"grpo.clip_eps_low={self.clip_eps_low} must be in [0, 1)"
        )
        require(self.clip_eps_high >= 0, f"grpo.clip_eps_high={self.clip_eps_high} must be >= 0")
        require(self.kl_coef >= 0, f"grpo.kl_coef={self.kl_coef} must be >= 0")
        require(
            self.beta >= 0 and self.lam >= 0,
            f"grpo.beta={self.beta}, grpo.lam={self.lam} must be >= 0",
        )


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

    def validate(self) -> None:
        require(0 <= self.ema_rho < 1, f"spo.ema_rho={self.ema_rho} must be in [0, 1)")
        require(self.min_dwell >= 1, f"spo.min_dwell={self.min_dwell} must be >= 1")
        require(self.cycle_length >= 1, f"spo.cycle_length={self.cycle_length} must be >= 1")
