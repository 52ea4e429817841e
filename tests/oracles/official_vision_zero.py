"""Test oracle: the official Vision-Zero reward path, restated line by line (not imported).

Source: github.com/wangqinsi1/Vision-Zero at commit fa3c01c, shipped path
`grpo_trainer.py` -> `_calculate_two_phase_rewards` -> the observer ("God") rewards of
`clevr_spotdiff_generator.py`. File names below are under
`src/open-r1-multimodal/src/open_r1/`: G = clevr_spotdiff_generator.py,
T = trainer/grpo_trainer.py; "G L326" is line 326 of G. The code keeps the official
structure and regexes on purpose (no linear-time rewrite, no shared code with vzero_nemo),
so that a differential test compares two independent statements of the same rules.
Players are 1-based here, as in the official code. One spy per game (the official game has
exactly one).

    oracle = OfficialRewardPath()
    out = oracle.play_game(spy_player, num_players, num_rounds, god_completions)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import torch

# G L1782-1785 (the same at G L2186-2189): CLEVRPotentialBasedRewardShaping(gamma=0.99,
# lambda_fmt=0.3, kappa_v=0.0, beta_acc=1.2).
GAMMA, LAMBDA_FMT, BETA_ACC = 0.99, 0.3, 1.2
# G L2318-2327: _calculate_strategic_clue_rewards(beta=0.1, lambda_param=0.1, role advantage on).
BETA, LAMBDA = 0.1, 0.1
# G L32: self.alpha = 0.9 (EMA of the role baselines).
ALPHA = 0.9
_BOXED_RE = r"\\\\?boxed\{(.*?)\}"  # G L331, L364, L417, L2373 (with or without the group)
_PROMPT_PHRASES = [  # G L348-350
    "you are player",
    "your task is",
    "game instructions",
    "required output format",
    "example answer",
]


def extract_thinking(text: str) -> str:
    """G L321-357, `extract_thinking_from_clue`."""
    think_match = re.search(r"<think>(.*?)</think>", text, re.DOTALL)  # G L326
    if think_match:
        return think_match.group(1).strip()  # G L327-328
    boxed_match = re.search(r"\\\\?boxed\{.*?\}", text, re.DOTALL)  # G L331
    if boxed_match:
        thinking_part = text[: boxed_match.start()].strip()  # G L334
        if thinking_part:  # G L336-337
            return thinking_part
    lines = text.strip().split("\n")  # G L341
    thinking_lines = []
    for line in lines:
        line = line.strip()
        if line and not re.search(r"\\\\?boxed\{.*?\}", line):  # G L346
            if not any(phrase in line.lower() for phrase in _PROMPT_PHRASES):  # G L348-352
                thinking_lines.append(line)
    if thinking_lines:
        return "\n".join(thinking_lines)  # G L354-355
    return ""  # G L357


def extract_answer(text: str) -> str | None:
    """The answer content as G L417-438 (votes) and G L2373-2390 (format) both read it;
    None where the official code leaves `answer_content` unset / empty."""
    boxed_match = re.search(_BOXED_RE, text, re.DOTALL)  # G L417 / L2373
    if boxed_match:
        return boxed_match.group(1).strip()  # G L419 / L2376
    answer_match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)  # G L424 / L2379
    if answer_match:
        return answer_match.group(1).strip()
    answer_start_match = re.search(r"<answer>\s*(.*)", text, re.DOTALL)  # G L431 / L2384
    if answer_start_match:
        content = answer_start_match.group(1).strip()
        return re.split(r"</answer>|<think>|<answer>", content)[0].strip()  # G L435 / L2388
    return None


def extract_vote(text: str) -> dict[str, Any] | None:
    """G L384-474, `extract_vote_from_decision` (the unused think_match lines omitted)."""
    answer_content = extract_answer(text)
    if answer_content:  # G L445
        answer_upper = answer_content.strip().upper()  # G L447
        if answer_upper == "N/A" or answer_upper == "NA":  # G L448
            return {"voted_spy": "N/A"}
        numbers = re.findall(r"\b([1-9])\b", answer_content)  # G L456
        if numbers:
            return {"voted_spy": int(numbers[0])}  # G L457-461
        try:  # G L464-472: JSON fallback behind a bare `except`
            vote_data = json.loads(answer_content)
            if "spy" in vote_data:
                return {"voted_spy": int(vote_data["spy"])}
        except Exception:
            pass
    return None  # G L474


def format_ok(text: str) -> bool:
    """G L2372-2396: reasoning longer than 10 characters and a non-empty answer."""
    thinking_content = extract_thinking(text)  # G L2372
    answer_content = extract_answer(text) or ""  # G L2373-2390 (L2390: "" when no slot)
    return bool(thinking_content and answer_content and len(thinking_content) > 10)  # G L2393


def decision_reward(text: str, vote_info: dict[str, Any] | None, spy_player: int) -> float:
    """G L2399-2427: format term + accuracy term + potential shaping."""
    if vote_info and "voted_spy" in vote_info:  # G L2400
        voted_spy = vote_info["voted_spy"]
        if voted_spy == spy_player:
            accuracy_component = 1.0  # G L2405
        elif voted_spy == "N/A":
            accuracy_component = -0.5  # G L2407
        else:
            accuracy_component = -1.0  # G L2409
    else:
        accuracy_component = -1.0  # G L2411
    r_fmt = LAMBDA_FMT * (2 * int(format_ok(text)) - 1)  # G L2415
    r_acc = accuracy_component * BETA_ACC  # G L2418
    phi_next = 1.0 if accuracy_component > 0 else 0.0  # G L2423 -> phi_acc, G L838-842
    shaped_term = GAMMA * phi_next - 0.0  # G L2425
    return r_fmt + r_acc + shaped_term  # G L2427


def strategic_clue_rewards(votes: list[Any], spy_player: int, num_players: int) -> list[float]:
    """G L1516-1669: zero-sum clue reward of each player (before the role baselines)."""
    vote_counts = {p: 0 for p in range(1, num_players + 1)}  # G L1572
    for vote_info in votes:  # G L1590-1612
        if vote_info and "voted_spy" in vote_info:
            voted_spy = vote_info["voted_spy"]
            if voted_spy == "N/A" or voted_spy == "NA":
                continue
            if isinstance(voted_spy, int) and 1 <= voted_spy <= num_players:  # G L1600
                vote_counts[voted_spy] += 1
    v_u = vote_counts[spy_player]  # G L1615
    civilian_votes = [vote_counts[p] for p in range(1, num_players + 1) if p != spy_player]
    v_c_bar = sum(civilian_votes) / len(civilian_votes) if civilian_votes else 0  # G L1626
    delta_psi = v_u - v_c_bar  # G L1629-1630
    rewards = [0.0] * num_players
    for player_id in range(1, num_players + 1):
        if player_id == spy_player:
            rewards[player_id - 1] = -BETA * delta_psi  # G L1654
        else:
            num_civilians = num_players - 1  # G L1661
            shared_reward = BETA * delta_psi / num_civilians  # G L1662
            individual = -LAMBDA * (vote_counts[player_id] - v_c_bar)  # G L1666
            rewards[player_id - 1] = shared_reward + individual  # G L1668
    return rewards


def group_normalize(rewards: list[float], eps: float = 1e-8) -> list[float]:
    """T L2070-2114, `_apply_group_normalization` (float32, population std)."""
    if len(rewards) <= 1:  # T L2085 (and T L1966: one generation is not normalised)
        return rewards
    rewards_tensor = torch.tensor(rewards, dtype=torch.float32)  # T L2089
    group_mean = rewards_tensor.mean()  # T L2092
    group_std = rewards_tensor.std(unbiased=False)  # T L2093
    max_diff = (rewards_tensor.max() - rewards_tensor.min()).item()  # T L2096
    if group_std > eps and max_diff > eps:  # T L2099
        normalized = (rewards_tensor - group_mean) / (group_std + eps)
    else:
        normalized = rewards_tensor - group_mean  # T L2103
    return normalized.tolist()


def _reduce_mean_float32(values: list[float]) -> float:
    # G L708-716: torch.tensor(python float) is float32 on every GPU;
    # accelerator.reduce(..., reduction="mean") then .item().
    return torch.tensor(values, dtype=torch.float32).mean().item()


@dataclass
class OfficialRewardPath:
    """The generator's role baselines (G L30-31) and the rewards of one micro-step: one game
    on each GPU (T L972-976), the role means reduced over the GPUs."""

    b_spy: float = 0.0
    b_civ: float = 0.0
    history: list[tuple[float, float]] = field(default_factory=list)

    def role_adjust(self, rewards_by_gpu: list[list[float]], spies: list[int]) -> list[list[float]]:
        """G L686-750, `apply_unified_role_advantage_adjustment` on every GPU at once: one
        EMA step from the means over GPUs, then r - b with the updated baselines."""
        spy_rewards, civilian_avgs = [], []
        for rewards, spy_player in zip(rewards_by_gpu, spies):
            spy_rewards.append(rewards[spy_player - 1])  # G L702
            civilian = [rewards[i] for i in range(len(rewards)) if i != spy_player - 1]
            civilian_avgs.append(sum(civilian) / len(civilian))  # G L703-704
        global_spy = _reduce_mean_float32(spy_rewards)
        global_civ = _reduce_mean_float32(civilian_avgs)
        self.b_spy = ALPHA * self.b_spy + (1 - ALPHA) * global_spy  # G L720 -> L765
        self.b_civ = ALPHA * self.b_civ + (1 - ALPHA) * global_civ  # G L766
        self.history.append((self.b_spy, self.b_civ))
        return [  # G L733-742 (the just-updated baselines)
            [r - (self.b_spy if i + 1 == spy else self.b_civ) for i, r in enumerate(rewards)]
            for rewards, spy in zip(rewards_by_gpu, spies)
        ]

    def play_micro_step(self, games: list[tuple[int, int, int, list[str]]]) -> list[dict]:
        """One game per GPU, each (spy_player, num_players, num_rounds, god_completions):
        G L2168-2430 per game, then T L1956-1975 (clue rewards not normalised, decision
        rewards group-normalised) and T L2423-2424 (advantages = float32 rewards). Clue
        advantages are listed round by round, players in seat order (G L1888-1891)."""
        votes = [[extract_vote(c) for c in game[3]] for game in games]  # G L2237
        raw = [strategic_clue_rewards(v, g[0], g[1]) for v, g in zip(votes, games)]
        adjusted = self.role_adjust(raw, [g[0] for g in games])  # G L1715
        out = []
        for (spy, n, rounds, texts), game_votes, r, adj in zip(games, votes, raw, adjusted):
            clue = [adj[p] for _ in range(rounds) for p in range(n)]
            decision = [decision_reward(c, v, spy) for c, v in zip(texts, game_votes)]
            out.append(
                {
                    "votes": game_votes,
                    "format_ok": [format_ok(c) for c in texts],
                    "clue_raw": r,
                    "clue_advantages": torch.tensor(clue, dtype=torch.float32).tolist(),
                    "decision_rewards": decision,
                    "decision_advantages": group_normalize(decision),
                }
            )
        return out

    def play_game(
        self, spy_player: int, num_players: int, num_rounds: int, god_completions: list[str]
    ) -> dict[str, Any]:
        """One GPU's micro-step: `play_micro_step` with a single game."""
        return self.play_micro_step([(spy_player, num_players, num_rounds, god_completions)])[0]


def phase_of_step(global_step: int, cycle_length: int) -> str:
    """T L913-925: the `interactive` phase of an optimizer step."""
    return "decision" if global_step % (2 * cycle_length) < cycle_length else "clue"


def trained_phases(phase: str) -> set[str]:
    """T L1022-1036 (which samples a step holds) with T L3716-3728 (which are trained):
    under `interactive` the loss reads training_phase = "interactive" and trains every
    sample of the step, so a clue step trains the God decision samples too."""
    return {"clue", "decision"} if phase == "clue" else {"decision"}
