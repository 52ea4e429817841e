"""Iterative-SPO stage controller (Vision-Zero Sec. 3.4): which stage gets gradients next.

Each iteration the trainer reports acc_t (fraction of games whose plurality vote names the
spy) and na_t (N/A votes / all votes) over the global batch. The controller keeps EMAs
started at 0, ema <- rho * ema + (1 - rho) * x (optionally bias-corrected, ema / (1 - rho^t)),
and a dwell counter d (iterations spent in the current stage, incremented every update):

    decision -> clue      when acc >= to_clue_accuracy (0.9) and na <= to_clue_na_rate (0.1)
                          and d >= min_dwell (K_min = 5)
    clue -> decision      when (1 - acc >= to_decision_error (0.4) or na >= to_decision_na_rate
                          (0.5)) and d >= min_dwell
    a switch resets d to 0.

With acc = 1 every iteration and no bias correction the smoothed accuracy is 1 - 0.95^t, which
first reaches 0.9 at t = 45: the first switch is returned by the 45th update. With bias
correction it is 1 from the start and the switch comes at t = K_min = 5.

`schedule=alternate` (official code) switches after every `cycle_length` updates: iteration t
(0-based) trains the start stage when (t // cycle_length) is even, as the official
`interactive` phase of step t is decision when t % (2 * cycle_length) < cycle_length. The
EMAs are still tracked for logging. The state (stage, EMAs, counters) checkpoints as a plain
dict.
"""

from __future__ import annotations

import math

from vzero_nemo.config import SPOConfig, Stage

STAGES = ("decision", "clue")


class StageController:
    """Decides the training stage of each iteration. `update(...)` returns the next stage."""

    def __init__(self, cfg: SPOConfig) -> None:
        if cfg.schedule not in ("iterative", "alternate"):
            raise ValueError(f"spo.schedule={cfg.schedule!r}; use iterative or alternate")
        if cfg.start_stage not in STAGES:
            raise ValueError(f"spo.start_stage={cfg.start_stage!r}; use one of {STAGES}")
        if not 0 <= cfg.ema_rho < 1:
            raise ValueError(f"spo.ema_rho={cfg.ema_rho} must be in [0, 1)")
        if cfg.min_dwell < 1:
            raise ValueError(f"spo.min_dwell={cfg.min_dwell} must be >= 1")
        if cfg.cycle_length < 1:
            raise ValueError(f"spo.cycle_length={cfg.cycle_length} must be >= 1")
        self.cfg = cfg
        self.stage: Stage = cfg.start_stage
        self.dwell = 0
        self.acc_ema = 0.0
        self.na_ema = 0.0
        self.num_updates = 0
        self.num_switches = 0

    @property
    def accuracy(self) -> float:
        """Smoothed accuracy used for the decision (bias-corrected if configured)."""
        return self._corrected(self.acc_ema)

    @property
    def na_rate(self) -> float:
        """Smoothed N/A rate used for the decision (bias-corrected if configured)."""
        return self._corrected(self.na_ema)

    def _corrected(self, ema: float) -> float:
        if not self.cfg.bias_correction or self.num_updates == 0:
            return ema
        return ema / (1 - self.cfg.ema_rho**self.num_updates)

    def update(self, accuracy: float, na_rate: float) -> Stage:
        """Fold in one iteration's global accuracy and N/A rate; return the next stage."""
        for name, value in (("accuracy", accuracy), ("na_rate", na_rate)):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"{name}={value!r} must be a finite number in [0, 1]")
        rho = self.cfg.ema_rho
        self.acc_ema = rho * self.acc_ema + (1 - rho) * float(accuracy)
        self.na_ema = rho * self.na_ema + (1 - rho) * float(na_rate)
        self.num_updates += 1
        self.dwell += 1
        if self._should_switch():
            self.stage = "clue" if self.stage == "decision" else "decision"
            self.dwell = 0
            self.num_switches += 1
        return self.stage

    def _should_switch(self) -> bool:
        cfg = self.cfg
        if cfg.schedule == "alternate":
            return self.dwell >= cfg.cycle_length
        if self.dwell < cfg.min_dwell:
            return False
        acc, na = self.accuracy, self.na_rate
        if self.stage == "decision":
            return acc >= cfg.to_clue_accuracy and na <= cfg.to_clue_na_rate
        return 1 - acc >= cfg.to_decision_error or na >= cfg.to_decision_na_rate

    def metrics(self) -> dict[str, float]:
        """Values to log: smoothed statistics, dwell, stage (1 = clue, 0 = decision)."""
        return {
            "spo/accuracy_ema": self.accuracy,
            "spo/na_rate_ema": self.na_rate,
            "spo/dwell": float(self.dwell),
            "spo/stage_is_clue": float(self.stage == "clue"),
            "spo/num_switches": float(self.num_switches),
        }

    def state_dict(self) -> dict[str, float | int | str]:
        return {
            "stage": self.stage,
            "dwell": self.dwell,
            "acc_ema": self.acc_ema,
            "na_ema": self.na_ema,
            "num_updates": self.num_updates,
            "num_switches": self.num_switches,
        }

    def load_state_dict(self, state: dict[str, float | int | str]) -> None:
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(
                f"StageController state keys {sorted(state)} != expected {sorted(expected)}"
            )
        if state["stage"] not in STAGES:
            raise ValueError(f"StageController state stage={state['stage']!r} is not a stage")
        self.stage = state["stage"]  # type: ignore[assignment]
        self.dwell = int(state["dwell"])
        self.acc_ema = float(state["acc_ema"])
        self.na_ema = float(state["na_ema"])
        self.num_updates = int(state["num_updates"])
        self.num_switches = int(state["num_switches"])
