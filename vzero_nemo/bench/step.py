"""Forward/backward throughput of the policy at a published width, reduced in depth.

    python -m vzero_nemo.bench.step --size 7b --layers 4 --batch 8 --seq 1024     # one GPU
    python -m vzero_nemo.bench.step --size tiny --batch 4 --seq 128 --steps 3      # CPU smoke

Builds the project's Qwen2.5-VL policy (the same provider, layer spec and dtype a recipe
uses) with the language model cut to `--layers` layers and the vision tower to 2 blocks, and
times text-only training steps (forward with labels -> per-token cross entropy -> backward;
no optimizer) on random token ids. Prints tokens/s, achieved TFLOP/s, MFU against the
device's dense bf16 peak, and peak memory. Model FLOPs per token are Megatron's count:
6 x (transformer-layer + output-layer parameters) + 12 x layers x hidden x sequence (the
attention scores and values, forward and backward). On CPU the "peak" is a measured bf16/fp32
matmul rate of this machine, stated as such.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

# Dense bf16 peaks (TFLOP/s, no sparsity) by device-name fragment.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def device_peak_tflops(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(peak TFLOP/s, where the number comes from) for `device`."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, peak in BF16_PEAK_TFLOPS.items():
            if fragment in name:
                return peak, f"{name} dense bf16 datasheet peak"
        raise ValueError(f"no bf16 peak known for {name!r}; add it to BF16_PEAK_TFLOPS")
    n = 1024
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start, reps = time.perf_counter(), 5
    for _ in range(reps):
        a @ b
    seconds = (time.perf_counter() - start) / reps
    return 2 * n**3 / seconds / 1e12, f"measured {n}^3 {dtype} matmul on this CPU"


def flops_per_token(dims, seq: int, vocab: int) -> float:
    h, f = dims.hidden_size, dims.ffn_hidden_size
    kv = dims.num_query_groups * dims.head_dim
    per_layer = h * (h + 2 * kv) + h * h + 3 * h * f  # qkv, proj, SwiGLU
    return 6 * (dims.num_layers * per_layer + h * vocab) + 12 * dims.num_layers * h * seq


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.bench.step")
    parser.add_argument("--size", default="7b", help="model.size whose widths are used")
    parser.add_argument("--layers", type=int, default=4, help="language layers kept")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up)")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    from vzero_nemo.config import ModelConfig, ParallelConfig
    from vzero_nemo.models.provider import build_policy, model_vocab
    from vzero_nemo.models.sizes import dims_for
    from vzero_nemo.parallel import destroy_parallel, initialize_parallel

    cuda = torch.cuda.is_available()
    dtype_name = args.dtype or ("bf16" if cuda else "fp32")
    model_cfg = ModelConfig(size=args.size, params_dtype=dtype_name, seq_length=args.seq)
    full = dims_for(args.size)
    vision = dataclasses.replace(full.vision, depth=2, fullatt_block_indexes=(1,))
    dims = dataclasses.replace(full, num_layers=min(args.layers, full.num_layers), vision=vision)
    par = initialize_parallel(ParallelConfig(), seed=0)
    try:
        model = build_policy(model_cfg, dims=dims).to(par.device)
        _, vocab = model_vocab(model_cfg)
        numbers = _time_steps(model, args, vocab, par.device)
    finally:
        destroy_parallel()
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    peak, peak_source = device_peak_tflops(par.device, dtype)
    tflops = numbers["tokens_per_s"] * flops_per_token(dims, args.seq, vocab) / 1e12
    numbers.update(tflops=tflops, mfu=tflops / peak, peak_tflops=peak)
    params = sum(p.numel() for p in model.parameters())
    device = torch.cuda.get_device_name(par.device) if cuda else "CPU"
    print(f"device: {device}; {args.size} widths, {dims.num_layers} language layers, "
          f"2 vision blocks, {params / 1e9:.2f}B parameters, {dtype_name}")  # fmt: skip
    print(f"B x T = {args.batch} x {args.seq}: {numbers['step_s'] * 1e3:.0f} ms/step, "
          f"{numbers['tokens_per_s']:,.0f} tokens/s, {tflops:.3g} TFLOP/s, "
          f"MFU {numbers['mfu']:.1%} of {peak:.3g} ({peak_source}), "
          f"peak memory {numbers['peak_memory_gib']:.1f} GiB")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(numbers, indent=1))
    return numbers


def _time_steps(model, args, vocab: int, device: torch.device) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.batch, args.seq + 1), generator=generator).to(device)
    positions = torch.arange(args.seq, device=device).expand(3, args.batch, args.seq)
    inputs, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def step() -> None:
        ce_BT = model(inputs, positions, None, labels=labels)
        ce_BT.float().mean().backward()
        model.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    step_s = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return {
        "step_s": step_s,
        "tokens_per_s": args.batch * args.seq / step_s,
        "peak_memory_gib": peak,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
