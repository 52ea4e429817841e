"""Rollout throughput: one batched generate call vs one request at a time, Megatron vs HF.

    python -m vzero_nemo.bench.rollout                         # 64 games x 4 seats, 1 thread
    python -m vzero_nemo.bench.rollout --threads 2 --max-new-tokens 24 --prompt-style full

The prompts are the first clue round of `--games` games of the tiny_cpu recipe (seat 0..3
each see the earlier clues of a scripted oracle player), rendered with the project tokenizer
and a random 48x48 image per seat: `games * seats` sequences of different lengths. Weights
are random (throughput does not depend on them), so no stop token is used and every row
generates exactly `--max-new-tokens` tokens in every mode.

Modes, all in this one process on the same prompts:
- `megatron batched`: `vzero_nemo.generation.generate` on all rows at once (KV cache).
- `megatron one-at-a-time`: the same call per row, as the official Vision-Zero code
  generates (one request per call).
- `hf batched` / `hf one-at-a-time`: transformers' `Qwen2_5_VLForConditionalGeneration.
  generate` (SDPA attention, dynamic KV cache) on the same weights (exported through
  Megatron-Bridge), left padding, `mm_token_type_ids` passed (without it transformers falls
  back to 1-D positions). A greedy run on `--check-rows` rows in both implementations must
  give identical tokens (printed as the agreement).

One-at-a-time modes run on the first `--serial-rows` rows (default: all); tokens/s is a
rate, so the ratios stay comparable. Prints a table with wall-clock and process-CPU time (the
CPU column is robust to other load on the machine) and the speed ratios on both clocks;
`--json PATH` saves them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from recipes.tiny_cpu import tiny_cpu
from vzero_nemo.config import ModelConfig, ParallelConfig
from vzero_nemo.generation import SamplingParams, generate
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import PromptInputs, render_chat
from vzero_nemo.models.tokenizer import VLTokenizer, load_tokenizer


def clue_round_prompts(
    num_games: int, num_seats: int, prompt_style: str, tokenizer: VLTokenizer, model_cfg, seed: int
) -> list[PromptInputs]:
    """The requests of the first clue round (seats in order), rendered with random images."""
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.policies import make_policy
    from vzero_nemo.game.synthetic import random_truths

    cfg = tiny_cpu()
    cfg.game.num_players = num_seats
    cfg.game.prompt_style = prompt_style
    env = GameBatch(random_truths("clevr", num_games, seed), cfg.game, seed, grpo=cfg.grpo)
    policy = make_policy("oracle", cfg.game, seed)
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(num_seats):
        requests = env.pending_requests()
        for request in requests:
            image = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
            prompts.append(render_chat(request.messages, tokenizer, image, model_cfg))
        env.submit({r.request_id: policy(r, env.truths[r.game_index]) for r in requests})
    return prompts


Timing = tuple[float, float, int]
"""(wall seconds, process CPU seconds, generated tokens) of one mode."""


def time_call(fn: Callable[[], int], repeats: int) -> Timing:
    """Fastest of `repeats` runs, wall and CPU time taken separately."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        tokens = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), tokens


def megatron_modes(model, prompts, tokenizer, model_cfg, args) -> dict[str, Timing]:
    params = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens
    )

    def batched() -> int:
        batch = collate_prompts(prompts, tokenizer, model_cfg)
        return generate(model, batch, params, torch.Generator().manual_seed(args.seed)).num_tokens

    def serial() -> int:
        generator = torch.Generator().manual_seed(args.seed)
        return sum(
            generate(
                model, collate_prompts([p], tokenizer, model_cfg), params, generator
            ).num_tokens
            for p in prompts[: args.serial_rows]
        )

    generate(model, collate_prompts(prompts[:4], tokenizer, model_cfg), params, torch.Generator())
    return {
        "megatron batched": time_call(batched, args.repeats),
        "megatron one-at-a-time": time_call(serial, args.repeats),
    }


def hf_model(megatron_model, model_cfg: ModelConfig):
    """transformers Qwen2.5-VL holding the Megatron model's weights (exported through
    Megatron-Bridge into a temporary HF checkpoint), SDPA attention."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vzero_nemo.models.hf_convert import save_hf_checkpoint

    with tempfile.TemporaryDirectory(prefix="vzero_bench_hf_") as tmp:
        save_hf_checkpoint([megatron_model], model_cfg, tmp)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            tmp, attn_implementation="sdpa", dtype=torch.float32
        )
    return model.eval()


def hf_generate(model, rows: list[PromptInputs], tokenizer, model_cfg, args, **overrides):
    """transformers `generate` on left-padded rows -> new token ids [len(rows), new]."""
    batch = collate_prompts(rows, tokenizer, model_cfg, padding_side="left")
    kwargs = dict(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.temperature > 0,
        temperature=args.temperature if args.temperature > 0 else None,
        top_p=args.top_p,
        top_k=None,
        eos_token_id=None,
        pad_token_id=tokenizer.pad_id,
    )
    kwargs.update(overrides)
    with torch.no_grad():
        out = model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            pixel_values=batch.row_pixel_values(),
            image_grid_thw=batch.row_grid_thw,
            mm_token_type_ids=(batch.input_ids == tokenizer.image_pad_id).int(),
            **kwargs,
        )
    return out[:, batch.input_ids.shape[1] :]


def greedy_agreement(megatron_model, hf, prompts, tokenizer, model_cfg, args) -> float:
    """Fraction of rows whose greedy tokens are identical in both implementations."""
    rows = prompts[: args.check_rows]
    greedy = SamplingParams(temperature=0, max_new_tokens=args.max_new_tokens)
    batch = collate_prompts(rows, tokenizer, model_cfg)
    ours = generate(megatron_model, batch, greedy, torch.Generator()).token_ids
    theirs = hf_generate(hf, rows, tokenizer, model_cfg, args, do_sample=False, temperature=None)
    return sum(a == b for a, b in zip(ours, theirs.tolist())) / len(rows)


def hf_modes(hf, prompts, tokenizer, model_cfg, args) -> dict[str, Timing]:
    def run(rows: list[PromptInputs]) -> int:
        torch.manual_seed(args.seed)
        return hf_generate(hf, rows, tokenizer, model_cfg, args).numel()

    run(prompts[:4])
    return {
        "hf batched": time_call(lambda: run(prompts), args.repeats),
        "hf one-at-a-time": time_call(
            lambda: sum(run([p]) for p in prompts[: args.serial_rows]), args.repeats
        ),
    }


PAIRS = (
    ("megatron batched", "megatron one-at-a-time"),
    ("megatron batched", "hf batched"),
    ("hf batched", "hf one-at-a-time"),
    ("megatron one-at-a-time", "hf one-at-a-time"),
)


def report(results: dict[str, Timing], num_rows: int, args) -> dict[str, float]:
    """Print the table and the speed ratios (wall and CPU); return them as a flat dict."""
    print(
        f"\n{num_rows} sequences x {args.max_new_tokens} new tokens, {args.threads} thread(s), "
        f"temperature {args.temperature}, best of {args.repeats}"
    )
    header = f"{'mode':<24} {'rows':>5} {'tokens':>7} {'wall s':>8} {'cpu s':>8}"
    print(f"{header} {'tok/s wall':>11} {'tok/s cpu':>10}")
    numbers: dict[str, float] = {}
    for mode, (wall, cpu, tokens) in results.items():
        numbers[f"tokens_per_s_wall/{mode}"] = tokens / wall
        numbers[f"tokens_per_s_cpu/{mode}"] = tokens / cpu
        print(
            f"{mode:<24} {tokens // args.max_new_tokens:>5} {tokens:>7} {wall:>8.2f} {cpu:>8.2f} "
            f"{tokens / wall:>11.1f} {tokens / cpu:>10.1f}"
        )
    print("speed ratios (tokens/s of the first over the second; wall, cpu):")
    for fast, slow in PAIRS:
        if fast in results and slow in results:
            for clock in ("wall", "cpu"):
                key = f"tokens_per_s_{clock}/"
                numbers[f"ratio_{clock}/{fast} / {slow}"] = (
                    numbers[key + fast] / numbers[key + slow]
                )
            print(
                f"  {fast} / {slow}: {numbers[f'ratio_wall/{fast} / {slow}']:.2f}x wall, "
                f"{numbers[f'ratio_cpu/{fast} / {slow}']:.2f}x cpu"
            )
    return numbers


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", help="model.size (CPU: tiny)")
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--seats", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--prompt-style", choices=("compact", "full"), default="compact")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--serial-rows", type=int, default=None, help="rows for one-at-a-time")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; the fastest counts")
    parser.add_argument("--check-rows", type=int, default=16, help="rows of the greedy check")
    parser.add_argument("--skip-hf", action="store_true", help="Megatron modes only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    model_cfg = ModelConfig(size=args.size)
    tokenizer = load_tokenizer(model_cfg)
    prompts = clue_round_prompts(
        args.games, args.seats, args.prompt_style, tokenizer, model_cfg, args.seed
    )
    args.serial_rows = min(args.serial_rows or len(prompts), len(prompts))
    lengths = [len(p) for p in prompts]
    print(f"prompt tokens: min {min(lengths)} mean {np.mean(lengths):.0f} max {max(lengths)}")

    initialize_parallel(ParallelConfig(), seed=args.seed)
    try:
        model = build_policy(model_cfg, tokenizer=tokenizer)
        results = megatron_modes(model, prompts, tokenizer, model_cfg, args)
        if not args.skip_hf:
            hf = hf_model(model, model_cfg)
            agreement = greedy_agreement(model, hf, prompts, tokenizer, model_cfg, args)
            print(f"greedy tokens identical in Megatron and HF: {agreement:.0%} of rows")
            results.update(hf_modes(hf, prompts, tokenizer, model_cfg, args))
    finally:
        destroy_parallel()
    numbers = report(results, len(prompts), args)
    if not args.skip_hf:
        numbers["greedy_agreement_with_hf"] = agreement
    if args.json is not None:
        args.json.write_text(json.dumps(numbers, indent=2))
    return numbers


if __name__ == "__main__":
    main()
