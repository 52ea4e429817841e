"""Time one iteration's game bookkeeping for many games on one core (no model, no images).

    python -m vzero_nemo.game.bench --games 1024

Measures, for B games with the default GameConfig (4 players, 2 clue rounds, observer with 8
votes): building every prompt (pending_requests), parsing every completion (submit), scoring
(training_samples + metrics) and advantages (group z-scores of the votes, RAE of the clues).
The completions are fixed realistic strings (clues, votes, N/A, junk), so generation is not
timed. Times are CPU seconds of this process (time.process_time, torch on one thread), so
other jobs on a shared machine do not inflate them; Python's garbage collector runs as usual
and its pauses are included. Prints the best of `--repeat` runs per phase and in total.

The advantage phase uses vzero_nemo.algorithms (torch), imported here at run time only; the
rest of vzero_nemo.game never imports torch.
"""

from __future__ import annotations

import argparse
import time

from vzero_nemo.config import GameConfig, GRPOConfig
from vzero_nemo.game.env import GameBatch, Request
from vzero_nemo.game.synthetic import random_truths


def _clock() -> float:
    # CPU seconds of this process: on a shared machine wall time measures the neighbours.
    return time.process_time()


_CLUES = (
    "<think>I see a small red rubber cube on the left.</think><answer>small red cube</answer>",
    "<think>There is a shiny object.</think><answer>large blue metal sphere</answer>",
    "I think it is \\boxed{a green cylinder}",
    "no tags at all, just rambling about the picture",
)
_VOTES = (
    "<think>Player {p} described something I do not see.</think><answer>{p}</answer>",
    "<think>Hard to say.</think><answer>N/A</answer>",
    "<think>Player {p} is odd.</think><answer>Player {p}</answer>",
    "The answer is \\boxed{{{p}}}",
    "<answer>seven</answer>",
)


def _completion(request: Request, num_players: int) -> str:
    g = request.game_index
    if request.stage == "clue":
        return _CLUES[(g + request.seat + request.round) % len(_CLUES)]
    k = int(request.request_id.rsplit("o", 1)[-1]) if request.seat < 0 else request.seat
    return _VOTES[(g + k) % len(_VOTES)].format(p=(g * 7 + k) % num_players + 1)


def run_once(num_games: int, game: GameConfig, grpo: GRPOConfig, seed: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)  # one core, as the bookkeeping runs in the trainer's main thread
    from vzero_nemo.algorithms.advantages import RoleBaselines, group_advantages, group_index

    truths = random_truths("clevr", num_games, seed)
    times = dict.fromkeys(("prompts", "parsing", "rewards", "advantages"), 0.0)
    start = _clock()
    env = GameBatch(truths, game, seed, grpo=grpo)
    while not env.done:
        t0 = _clock()
        requests = env.pending_requests()
        t1 = _clock()
        completions = {r.request_id: _completion(r, game.num_players) for r in requests}
        t2 = _clock()
        env.submit(completions)
        t3 = _clock()
        times["prompts"] += t1 - t0
        times["parsing"] += t3 - t2
    t0 = _clock()
    samples = env.training_samples()
    env.metrics()
    t1 = _clock()
    votes = [s for s in samples if s.stage == "decision"]
    clues = [s for s in samples if s.stage == "clue"]
    index, _ = group_index([s.group_id for s in votes])
    group_advantages(torch.tensor([s.reward for s in votes]), index, std_normalize=True)
    is_spy = torch.tensor([s.role == "spy" for s in clues])
    clue_r = torch.tensor([s.reward for s in clues])
    baselines = RoleBaselines.from_config(grpo)
    baselines.update(clue_r[is_spy], clue_r[~is_spy]).advantages(clue_r, is_spy)
    t2 = _clock()
    times["rewards"] = t1 - t0
    times["advantages"] = t2 - t1
    times["total"] = t2 - start
    times["requests"] = float(len(samples))
    return times


def bench(num_games: int, repeat: int = 3, seed: int = 0) -> dict[str, float]:
    """Best-of-`repeat` seconds per phase (and total) for `num_games` games."""
    if num_games < 1 or repeat < 1:
        raise ValueError(f"games={num_games} and repeat={repeat} must be >= 1")
    game, grpo = GameConfig(), GRPOConfig()
    runs = [run_once(num_games, game, grpo, seed) for _ in range(repeat)]
    return {key: min(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result = bench(args.games, args.repeat)
    print(f"games={args.games} requests={int(result['requests'])} (best of {args.repeat})")
    for key in ("prompts", "parsing", "rewards", "advantages", "total"):
        print(f"  {key:11s} {result[key] * 1000:8.1f} ms")
    return result


if __name__ == "__main__":
    main()
