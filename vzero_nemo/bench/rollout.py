"""Rollout throughput: batched Megatron generation vs one request at a time vs HF `generate`.

    python -m vzero_nemo.bench.rollout                      # tiny_cpu: 16 games, 1 thread
    python -m vzero_nemo.bench.rollout data.games_per_iteration=64 game.prompt_style=full \\
        --threads 2 --json rollout.json

The workload is the generation of one self-play iteration of the recipe, with the rollout's
own request building and rendering (`vzero_nemo.training.rollout.render_requests`):
- `clue`: the first clue round, every seat of every game in one call (seat k sees the
  scripted oracle's earlier clues); the civilians of a game see its original image, the spy
  the edited one (random 48x48 pixels with one block changed), so the batch holds 2 images
  per game;
- `vote`: the observer's prompt of every game, `game.num_votes` samples each (the GRPO group).
Max new tokens are the recipe's `rollout.max_clue_tokens` / `max_vote_tokens`. Weights are
random (throughput does not depend on them), so no stop token is used and every row
generates exactly that many tokens in every mode. Config comes from `vzero_nemo.cli`
(`--recipe`, `key=value`); the flags are benchmark settings only.

Modes, in this one process, on the same weights and prompts:
- `megatron batched`: `vzero_nemo.generation.generate`, one call per workload (KV cache,
  packed prefill of each distinct prompt once, each distinct image encoded once);
- `megatron batched, layers`: the same call with every decode step through megatron-core's
  layer forward instead of `generation.decode_step.LeanDecoder` (`lean_decode=False`); the
  sampled tokens and log-probs of both must be identical on the whole workload (printed);
- `megatron one-at-a-time`: the same call per row, as the official Vision-Zero code
  generates (one request per call);
- `hf batched` / `hf one-at-a-time`: transformers' `Qwen2_5_VLForConditionalGeneration.
  generate` (SDPA attention, dynamic KV cache) on the same weights (exported through
  Megatron-Bridge), left padding, one image per row, `mm_token_type_ids` passed (without it
  transformers falls back to 1-D positions). A greedy run on `--check-rows` rows of each
  workload must give identical tokens in both implementations (printed as the agreement).

One-at-a-time modes run on the first `--serial-rows` rows of each workload; tokens/s is a
rate, so the ratios stay comparable. Prints per workload and for the whole iteration (both
workloads: tokens over summed time) a table with wall-clock and process-CPU time (the CPU
column is robust to other load on the machine) and the speed ratios on both clocks.
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
from PIL import Image

from vzero_nemo.config import ModelConfig, VZeroConfig
from vzero_nemo.generation import SamplingParams, generate
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.models.tokenizer import VLTokenizer

WORKLOADS = ("clue", "vote")
Timing = tuple[float, float, int]
"""(wall seconds, process CPU seconds, generated tokens) of one mode."""


def game_pairs(cfg: VZeroConfig, seed: int) -> list:
    """Random-pixel image pairs (one block of the spy image changed) with clevr truths."""
    from vzero_nemo.game.synthetic import random_truths
    from vzero_nemo.training.rollout import GamePair

    rng = np.random.default_rng(seed)
    truths = random_truths("clevr", cfg.data.games_per_iteration, seed)
    side = int(cfg.model.max_pixels**0.5)
    pairs = []
    for i, truth in enumerate(truths):
        original = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        modified = original.copy()
        modified[: side // 3, : side // 3] = rng.integers(0, 256, size=3, dtype=np.uint8)
        pairs.append(
            GamePair(f"bench{i}", Image.fromarray(original), Image.fromarray(modified), truth)
        )
    return pairs


def workload_prompts(
    cfg: VZeroConfig, tokenizer: VLTokenizer, seed: int
) -> dict[str, list[PromptInputs]]:
    """The rendered prompts of the clue round (all seats) and of the vote turn."""
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.policies import make_policy
    from vzero_nemo.training.rollout import render_requests

    pairs = game_pairs(cfg, seed)
    env = GameBatch([p.truth for p in pairs], cfg.game, seed, grpo=cfg.grpo)
    oracle = make_policy("oracle", cfg.game, seed)
    clue: list = []
    while env.stage == "clue":
        requests = env.pending_requests()
        if requests[0].round == 0:
            clue += requests
        env.submit({r.request_id: oracle(r, pairs[r.game_index].truth) for r in requests})
    votes = env.pending_requests()
    # One render per turn kind, as the rollout renders a turn: shared prompts and patches.
    return {
        "clue": render_requests(clue, pairs, tokenizer, cfg.model),
        "vote": render_requests(votes, pairs, tokenizer, cfg.model),
    }


def time_modes(modes: dict[str, Callable[[], int]], repeats: int) -> dict[str, Timing]:
    """Fastest of `repeats` runs per mode, wall and CPU time taken separately. The modes take
    turns (round robin), so a slow spell of a noisy machine hits them alike."""
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    cpus: dict[str, list[float]] = {mode: [] for mode in modes}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for mode, fn in modes.items():
            wall, cpu = time.perf_counter(), time.process_time()
            tokens[mode] = fn()
            walls[mode].append(time.perf_counter() - wall)
            cpus[mode].append(time.process_time() - cpu)
    return {mode: (min(walls[mode]), min(cpus[mode]), tokens[mode]) for mode in modes}


def megatron_modes(model, prompts, tokenizer, model_cfg, params, args) -> dict[str, Callable]:
    def batched(lean_decode: bool = True) -> int:
        batch = collate_prompts(prompts, tokenizer, model_cfg)
        generator = torch.Generator().manual_seed(args.seed)
        return generate(model, batch, params, generator, lean_decode=lean_decode).num_tokens

    def serial() -> int:
        generator = torch.Generator().manual_seed(args.seed)
        return sum(
            generate(
                model, collate_prompts([p], tokenizer, model_cfg), params, generator
            ).num_tokens
            for p in prompts[: args.serial_rows]
        )

    return {
        "megatron batched": batched,
        LAYER_FORWARD: lambda: batched(lean_decode=False),
        "megatron one-at-a-time": serial,
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


def hf_generate(model, rows, tokenizer, model_cfg, params: SamplingParams, **overrides):
    """transformers `generate` on left-padded rows -> new token ids [len(rows), new]."""
    batch = collate_prompts(rows, tokenizer, model_cfg, padding_side="left")
    kwargs = dict(
        max_new_tokens=params.max_new_tokens,
        do_sample=params.temperature > 0,
        temperature=params.temperature if params.temperature > 0 else None,
        top_p=params.top_p,
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


def greedy_agreement(megatron_model, hf, rows, tokenizer, model_cfg, max_new: int) -> float:
    """Fraction of rows whose greedy tokens are identical in both implementations."""
    greedy = SamplingParams(temperature=0, max_new_tokens=max_new)
    batch = collate_prompts(rows, tokenizer, model_cfg)
    ours = generate(megatron_model, batch, greedy, torch.Generator()).token_ids
    theirs = hf_generate(hf, rows, tokenizer, model_cfg, greedy, do_sample=False)
    return sum(a == b for a, b in zip(ours, theirs.tolist())) / len(rows)


def hf_modes(hf, prompts, tokenizer, model_cfg, params, args) -> dict[str, Callable]:
    def run(rows: list[PromptInputs]) -> int:
        torch.manual_seed(args.seed)
        return hf_generate(hf, rows, tokenizer, model_cfg, params).numel()

    return {
        "hf batched": lambda: run(prompts),
        "hf one-at-a-time": lambda: sum(run([p]) for p in prompts[: args.serial_rows]),
    }


LAYER_FORWARD = "megatron batched, layers"
"""Batched, every decode step through megatron-core's layer forward (`lean_decode=False`)."""

PAIRS = (
    ("megatron batched", "megatron one-at-a-time"),
    ("megatron batched", LAYER_FORWARD),
    (LAYER_FORWARD, "hf batched"),
    ("megatron batched", "hf batched"),
    ("hf batched", "hf one-at-a-time"),
    ("megatron one-at-a-time", "hf one-at-a-time"),
)


def report(title: str, results: dict[str, Timing], rows: dict[str, int]) -> dict[str, float]:
    """Print the table and the speed ratios (wall and CPU); return them as a flat dict."""
    print(f"\n{title}")
    header = f"{'mode':<24} {'rows':>5} {'tokens':>7} {'wall s':>8} {'cpu s':>8}"
    print(f"{header} {'tok/s wall':>11} {'tok/s cpu':>10}")
    numbers: dict[str, float] = {}
    for mode, (wall, cpu, tokens) in results.items():
        numbers[f"tokens_per_s_wall/{mode}"] = tokens / wall
        numbers[f"tokens_per_s_cpu/{mode}"] = tokens / cpu
        print(
            f"{mode:<24} {rows[mode]:>5} {tokens:>7} {wall:>8.2f} {cpu:>8.2f} "
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


def _params(cfg: VZeroConfig, workload: str) -> SamplingParams:
    r = cfg.rollout
    return SamplingParams(
        temperature=r.temperature,
        top_p=r.top_p,
        max_new_tokens=r.max_clue_tokens if workload == "clue" else r.max_vote_tokens,
    )


def run_workloads(model, hf, prompts, tokenizer, cfg: VZeroConfig, args) -> dict[str, float]:
    """Time every mode on every workload, print the tables; the numbers as a flat dict."""
    numbers: dict[str, float] = {}
    totals: dict[str, list[float]] = {}
    total_rows: dict[str, int] = {}
    for workload in WORKLOADS:
        rows, params = prompts[workload], _params(cfg, workload)
        modes = megatron_modes(model, rows, tokenizer, cfg.model, params, args)
        if hf is not None:
            modes.update(hf_modes(hf, rows, tokenizer, cfg.model, params, args))
        results = time_modes(modes, args.repeats)
        serial = min(args.serial_rows, len(rows))
        counts = {m: serial if "one-at-a-time" in m else len(rows) for m in results}
        title = f"{workload}: {len(rows)} sequences x {params.max_new_tokens} new tokens"
        for key, value in report(title, results, counts).items():
            numbers[f"{workload}/{key}"] = value
        for mode, timing in results.items():
            totals.setdefault(mode, [0.0, 0.0, 0])
            totals[mode] = [a + b for a, b in zip(totals[mode], timing)]
            total_rows[mode] = total_rows.get(mode, 0) + counts[mode]
    title = f"iteration (clue + vote), {args.threads} thread(s), best of {args.repeats}"
    whole = {mode: (t[0], t[1], int(t[2])) for mode, t in totals.items()}
    for key, value in report(title, whole, total_rows).items():
        numbers[f"iteration/{key}"] = value
    return numbers


def describe(prompts: dict[str, list[PromptInputs]], tokenizer, model_cfg) -> None:
    for workload, rows in prompts.items():
        lengths = [len(p) for p in rows]
        images = collate_prompts(rows, tokenizer, model_cfg).image_grid_thw.shape[0]
        print(
            f"{workload}: {len(rows)} rows, {len({id(p) for p in rows})} distinct prompts, "
            f"{images} distinct images, prompt tokens {min(lengths)}-{max(lengths)}"
        )


def lean_identical(model, prompts, tokenizer, cfg: VZeroConfig, seed: int) -> dict[str, bool]:
    """Whether the lean decode samples the same tokens with the same log-probs as the layer
    forward on every row of each workload (printed)."""
    same = {}
    for workload in WORKLOADS:
        outs = [
            generate(
                model,
                collate_prompts(prompts[workload], tokenizer, cfg.model),
                _params(cfg, workload),
                torch.Generator().manual_seed(seed),
                lean_decode=lean,
            )
            for lean in (True, False)
        ]
        same[workload] = (
            outs[0].token_ids == outs[1].token_ids and outs[0].logprobs == outs[1].logprobs
        )
        rows = len(prompts[workload])
        verdict = "identical" if same[workload] else "DIFFERENT"
        print(
            f"{workload}: lean decode vs layer forward: tokens and log-probs {verdict} ({rows} rows)"
        )
    return same


def check_agreement(model, hf, prompts, tokenizer, cfg: VZeroConfig, rows: int) -> dict:
    """Greedy agreement with HF on the first `rows` rows of each workload (printed)."""
    agreement = {}
    for workload in WORKLOADS:
        check = prompts[workload][:rows]
        max_new = _params(cfg, workload).max_new_tokens
        agreement[workload] = greedy_agreement(model, hf, check, tokenizer, cfg.model, max_new)
        print(
            f"{workload}: greedy tokens identical in Megatron and HF on "
            f"{agreement[workload]:.0%} of {len(check)} rows"
        )
    return agreement


def main(argv: list[str] | None = None) -> dict[str, float]:
    from vzero_nemo.cli import add_config_arguments, config_from_argv

    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.bench.rollout", description=__doc__.splitlines()[0]
    )
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--serial-rows", type=int, default=32, help="rows for one-at-a-time")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of every mode in turn; each mode's fastest run counts",
    )
    parser.add_argument("--check-rows", type=int, default=16, help="rows of the greedy check")
    parser.add_argument("--skip-hf", action="store_true", help="Megatron modes only")
    parser.add_argument("--seed", type=int, default=0, help="images, spy seats, sampling")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args, cfg = config_from_argv(parser, argv)
    torch.set_num_threads(args.threads)

    from vzero_nemo.models.provider import build_policy
    from vzero_nemo.models.tokenizer import load_tokenizer
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    tokenizer = load_tokenizer(cfg.model)
    prompts = workload_prompts(cfg, tokenizer, args.seed)
    describe(prompts, tokenizer, cfg.model)
    warm = prompts["clue"][:4]
    initialize_parallel(cfg.parallel, seed=args.seed)
    try:
        model = build_policy(cfg.model, cfg.parallel, tokenizer=tokenizer)
        batch = collate_prompts(warm, tokenizer, cfg.model)
        generate(model, batch, _params(cfg, "clue"), torch.Generator())
        lean_same = lean_identical(model, prompts, tokenizer, cfg, args.seed)
        hf, agreement = None, {}
        if not args.skip_hf:
            hf = hf_model(model, cfg.model)
            agreement = check_agreement(model, hf, prompts, tokenizer, cfg, args.check_rows)
            hf_generate(hf, warm, tokenizer, cfg.model, _params(cfg, "clue"))
        numbers = run_workloads(model, hf, prompts, tokenizer, cfg, args)
    finally:
        destroy_parallel()
    for workload, value in agreement.items():
        numbers[f"{workload}/greedy_agreement_with_hf"] = value
    for workload, value in lean_same.items():
        numbers[f"{workload}/lean_decode_identical"] = float(value)
    if args.json is not None:
        args.json.write_text(json.dumps(numbers, indent=2))
    return numbers


if __name__ == "__main__":
    main()
