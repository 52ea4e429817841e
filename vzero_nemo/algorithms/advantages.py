"""Advantages: group z-scores (decision stage) and Role-Advantage Estimation (clue stage).

Pure tensor / number functions: no torch.distributed. The trainer gathers what spans ranks
(rewards of a GRPO group live on one rank; RAE role means are over the GLOBAL batch, so the
trainer passes all ranks' clue rewards, or their global means, to `RoleBaselines.update`).

Decision stage (GRPO, Shao et al. 2024; Vision-Zero Sec. 3.3): A_i = (r_i - mean_g) /
(std_g + 1e-8) over the samples of group g, std being the unbiased (Bessel) sample standard
deviation as in TRL and verl (`group_std="sample"`) or the population one (`"population"`,
divide by n: the official code); A = 0 for every sample of a group whose rewards are all
equal (including groups of one), so floating-point noise in the mean never becomes a signal.
`std_normalize=False` gives r_i - mean_g (Dr. GRPO, Liu et al. 2025).

Clue stage (Vision-Zero Eq. 2-3, RAE): per-role EMA baselines b_spy, b_civ start at 0;
each step b <- alpha * b + (1 - alpha) * mean(r_role); A = r - b(role), with b the updated
baseline (`rae_subtract=updated`, paper) or the one from before this step (`previous`, SPIRAL).
A step is one iteration (`rae_update=iteration`) or one game (`game`, the official code:
`game_role_means` gives each game's spy and civilian-average reward, `update_per_game` takes
one step per game and returns the baselines each game subtracts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from vzero_nemo.config import GRPOConfig

RAE_ROLES = ("spy", "civilian")


def group_index(group_ids: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    """Map string group ids to contiguous ints: (index_N int64, names in first-seen order)."""
    names: dict[str, int] = {}
    index = [names.setdefault(g, len(names)) for g in group_ids]
    return torch.tensor(index, dtype=torch.long), list(names)


def group_advantages(
    rewards_N: torch.Tensor,
    group_index_N: torch.Tensor,
    *,
    std_normalize: bool = True,
    group_std: str = "sample",
    eps: float = 1e-8,
) -> torch.Tensor:
    """Group-relative advantages [N] (see module docstring); computed in float64, returned in
    the dtype of rewards_N. group_index_N: int64 [N], any non-negative ids. group_std:
    `sample` (n - 1) or `population` (n)."""
    if group_std not in ("sample", "population"):
        raise ValueError(f"grpo.group_std={group_std!r}; use sample or population")
    if rewards_N.dim() != 1 or group_index_N.shape != rewards_N.shape:
        raise ValueError(
            f"rewards_N {tuple(rewards_N.shape)} and group_index_N "
            f"{tuple(group_index_N.shape)} must be 1-D of the same length"
        )
    if rewards_N.numel() == 0:
        return rewards_N.clone()
    if group_index_N.dtype != torch.long or int(group_index_N.min()) < 0:
        raise ValueError("group_index_N must be non-negative int64 ids (see group_index)")
    r = rewards_N.to(torch.float64)
    idx = group_index_N
    num_groups = int(idx.max()) + 1
    counts = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, idx, torch.ones_like(r))
    sums = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, idx, r)
    mean = sums / counts.clamp(min=1)
    dev = r - mean[idx]
    gmax = torch.full((num_groups,), -math.inf, dtype=torch.float64).scatter_reduce(
        0, idx, r, reduce="amax"
    )
    gmin = torch.full((num_groups,), math.inf, dtype=torch.float64).scatter_reduce(
        0, idx, r, reduce="amin"
    )
    constant = (gmax == gmin)[idx]
    if std_normalize:
        sq = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, idx, dev * dev)
        dof = counts - 1 if group_std == "sample" else counts
        std = (sq / dof.clamp(min=1)).sqrt()
        adv = dev / (std[idx] + eps)
    else:
        adv = dev
    adv = torch.where(constant, torch.zeros_like(adv), adv)
    return adv.to(rewards_N.dtype)


def _mean(rewards: Sequence[float] | torch.Tensor | float, role: str) -> float:
    """Mean of a reward list/tensor, or a float taken as the already-reduced global mean."""
    if isinstance(rewards, int | float):
        value = float(rewards)
    elif isinstance(rewards, torch.Tensor):
        if rewards.numel() == 0:
            raise ValueError(f"no {role} rewards this step; RAE needs at least one")
        value = float(rewards.double().mean())
    else:
        if len(rewards) == 0:
            raise ValueError(f"no {role} rewards this step; RAE needs at least one")
        value = math.fsum(float(x) for x in rewards) / len(rewards)
    if not math.isfinite(value):
        raise ValueError(f"{role} reward mean {value} is not finite")
    return value


@dataclass(kw_only=True, slots=True)
class RoleBaselines:
    """Per-role EMA baselines of the clue stage (RAE). Checkpoint with state_dict()."""

    alpha: float = 0.95
    subtract: str = "updated"
    bias_correction: bool = False
    """Divide the EMAs by 1 - alpha^t (t = updates so far), as Adam does: without it the
    baselines start at 0 and need ~1 / (1 - alpha) updates to reach the reward level."""
    spy: float = 0.0
    civilian: float = 0.0
    previous_spy: float = 0.0
    previous_civilian: float = 0.0
    num_updates: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.alpha < 1:
            raise ValueError(f"RAE alpha={self.alpha} must be in [0, 1)")
        if self.subtract not in ("updated", "previous", "none"):
            raise ValueError(f"rae_subtract={self.subtract!r}; use 'updated', 'previous' or 'none'")

    @classmethod
    def from_config(cls, grpo: GRPOConfig) -> RoleBaselines:
        return cls(
            alpha=grpo.rae_alpha,
            subtract=grpo.rae_subtract,
            bias_correction=grpo.rae_bias_correction,
        )

    def update(
        self,
        spy_rewards: Sequence[float] | torch.Tensor | float,
        civilian_rewards: Sequence[float] | torch.Tensor | float,
    ) -> RoleBaselines:
        """One EMA step from this step's GLOBAL clue rewards per role (lists/tensors of
        rewards, or floats = their global means). Returns self."""
        spy_mean = _mean(spy_rewards, "spy")
        civ_mean = _mean(civilian_rewards, "civilian")
        self.previous_spy, self.previous_civilian = self.spy, self.civilian
        self.spy = self.alpha * self.spy + (1 - self.alpha) * spy_mean
        self.civilian = self.alpha * self.civilian + (1 - self.alpha) * civ_mean
        self.num_updates += 1
        return self

    def update_per_game(self, role_means_G2: torch.Tensor) -> torch.Tensor:
        """One EMA step per game, in order, from role_means_G2[k] = (spy, civilian) mean
        reward of game k (`game_role_means`, averaged over DP ranks by the caller). Returns
        [G, 2] float64: the (spy, civilian) baselines game k's samples subtract."""
        if role_means_G2.dim() != 2 or role_means_G2.shape[1] != 2:
            raise ValueError(f"role_means_G2 {tuple(role_means_G2.shape)} must be [G, 2]")
        out = torch.empty(role_means_G2.shape, dtype=torch.float64)
        for k, (spy_mean, civ_mean) in enumerate(role_means_G2.double().tolist()):
            self.update(spy_mean, civ_mean)
            out[k, 0], out[k, 1] = self.baseline("spy"), self.baseline("civilian")
        return out

    def baseline(self, role: str) -> float:
        """The value subtracted from `role`'s rewards this step (per `subtract`)."""
        if role not in RAE_ROLES:
            raise ValueError(f"role={role!r}; RAE baselines exist for {RAE_ROLES}")
        if self.subtract == "none":  # RAE off (ablation): the raw reward is the advantage
            return 0.0
        if self.subtract == "previous":
            value = self.previous_spy if role == "spy" else self.previous_civilian
            return value / self._correction(self.num_updates - 1)
        return self.level(role)

    def level(self, role: str) -> float:
        """The current EMA of `role`'s mean clue reward (bias-corrected when configured)."""
        value = self.spy if role == "spy" else self.civilian
        return value / self._correction(self.num_updates)

    def _correction(self, updates: int) -> float:
        if not self.bias_correction or updates <= 0:
            return 1.0
        return 1.0 - self.alpha**updates

    def advantages(self, rewards_N: torch.Tensor, is_spy_N: torch.Tensor) -> torch.Tensor:
        """A = r - b(role) for each clue sample [N]; is_spy_N: bool [N]."""
        if rewards_N.shape != is_spy_N.shape:
            raise ValueError(
                f"rewards_N {tuple(rewards_N.shape)} and is_spy_N {tuple(is_spy_N.shape)} differ"
            )
        b_spy, b_civ = self.baseline("spy"), self.baseline("civilian")
        base = torch.where(
            is_spy_N.bool(),
            torch.tensor(b_spy, dtype=torch.float64),
            torch.tensor(b_civ, dtype=torch.float64),
        )
        return (rewards_N.to(torch.float64) - base).to(rewards_N.dtype)

    def state_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | int | str]) -> None:
        expected = set(asdict(self))
        if set(state) != expected:
            raise ValueError(
                f"RoleBaselines state keys {sorted(state)} != expected {sorted(expected)}"
            )
        restored = RoleBaselines(**state)  # validates alpha and subtract
        for key in expected:
            setattr(self, key, getattr(restored, key))


def game_role_means(
    rewards_N: torch.Tensor, is_spy_N: torch.Tensor, game_N: torch.Tensor, num_games: int
) -> torch.Tensor:
    """[num_games, 2] float64: the mean clue reward of game k's spy samples and of its
    civilian samples (each seat's reward repeats over its clue turns, so this is the spy's
    reward and the civilians' average, as the official code's per-game RAE step takes)."""
    if not (rewards_N.shape == is_spy_N.shape == game_N.shape) or rewards_N.dim() != 1:
        raise ValueError(
            f"rewards_N {tuple(rewards_N.shape)}, is_spy_N {tuple(is_spy_N.shape)} and game_N "
            f"{tuple(game_N.shape)} must be 1-D of the same length"
        )
    slot = game_N.long() * 2 + (~is_spy_N.bool()).long()  # column 0 spy, 1 civilian
    sums = torch.zeros(2 * num_games, dtype=torch.float64)
    sums.index_add_(0, slot, rewards_N.double())
    counts = torch.zeros(2 * num_games, dtype=torch.float64)
    counts.index_add_(0, slot, torch.ones_like(rewards_N, dtype=torch.float64))
    if bool((counts == 0).any()):
        empty = sorted({int(i) // 2 for i in torch.nonzero(counts == 0).flatten()})
        raise ValueError(f"games {empty[:5]} lack a spy or civilian clue sample; RAE per game")
    return (sums / counts).view(num_games, 2)


def role_weights(
    is_spy_N: torch.Tensor, num_spy: float, num_civilian: float, spy_share: float = 0.5
) -> torch.Tensor:
    """[N] float64 weights that give the spies `spy_share` of the total weight and the
    civilians the rest: N * share / N_role per sample, from the GLOBAL role counts
    (`grpo.rae_role_weight`: `role` is 0.5, `spy_only` 1.0). Their sum over the global batch
    is its number of samples, so the loss keeps its scale. A role with no sample leaves the
    other's weights at 1."""
    if num_spy < 0 or num_civilian < 0:
        raise ValueError(f"role counts ({num_spy}, {num_civilian}) must be >= 0")
    if not 0 <= spy_share <= 1:
        raise ValueError(f"spy_share={spy_share} must be in [0, 1]")
    total = num_spy + num_civilian
    both = num_spy > 0 and num_civilian > 0
    spy_w = total * spy_share / num_spy if both else 1.0
    civ_w = total * (1 - spy_share) / num_civilian if both else 1.0
    return torch.where(is_spy_N.bool(), spy_w, civ_w).double()
