"""Measure the memory of a real training step on CPU, to check the planner against it.

    measured = measure_training_step(cfg)        # a finalized config on the CPU
    python -m vzero_nemo.plan.measure model.size=7b_1layer model.seq_length=512

One process builds the run's policy stack (`training.setup.build_stack`: megatron-core model,
DDP grad buffer, AdamW), then takes two optimizer steps on `train.micro_batch_size` sequences
of exactly `model.seq_length` tokens (a rendered game prompt with its own random
`max_pixels` image per row, then random response tokens), with the trainer's policy loss.
Counted:

- static state, from the tensors: parameters, DDP gradient buffers, optimizer state (after
  the first step has created it);
- activations: the bytes autograd keeps for backward in the second step's forward
  (`saved_tensors_hooks`, each storage once, parameters excluded; not what backward saves
  again while it recomputes a checkpointed region) - what the planner's training phase adds
  on top of the static state;
- the step's peak above the static state from the process RSS (`VmHWM` reset through
  `/proc/self/clear_refs` after `malloc_trim`): activations plus the transient buffers of
  backward and the optimizer, as the allocator really held them.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vzero_nemo.config import VZeroConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class Measured:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    """Saved-for-backward bytes of one micro-batch (the whole step's forward)."""
    peak_above_static: int
    """RSS high-water mark of the second step minus the RSS before it."""
    response_tokens: int
    """Response tokens per row (where the loss, hence the logits, are computed)."""


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _settle_and_reset_peak() -> int:
    """Return RSS bytes after freeing what the allocator holds, and reset the peak to it."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _sequences(cfg: VZeroConfig, tokenizer, rows: int):
    from vzero_nemo.game.env import GameBatch
    from vzero_nemo.game.synthetic import random_truths
    from vzero_nemo.models.chat import render_chat
    from vzero_nemo.training.batching import TrainSequence

    env = GameBatch(random_truths("clevr", 1, seed=0), cfg.game, seed=0, grpo=cfg.grpo)
    side = int(cfg.model.max_pixels**0.5)
    rng = np.random.default_rng(0)
    messages = env.pending_requests()[0].messages
    out = []
    for _ in range(rows):  # a different image per row: the vision tower's worst case
        image = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        prompt = render_chat(messages, tokenizer, image, cfg.model)
        response = cfg.model.seq_length - len(prompt)
        if response < 1:
            raise ValueError(
                f"model.seq_length={cfg.model.seq_length} leaves no response after a "
                f"{len(prompt)}-token prompt; raise it"
            )
        ids = rng.integers(0, 1000, size=response).tolist()
        out.append(TrainSequence(prompt, ids, [0.0] * response, advantage=1.0))
    return out


def _step(stack, batches, cfg: VZeroConfig) -> None:
    from vzero_nemo.algorithms.losses import policy_loss
    from vzero_nemo.training import engine

    def loss_fn(mb, ce_BT):
        loss, units, _ = policy_loss(
            -ce_BT.float(), mb.advantages, mb.loss_mask, cfg.grpo, old_logp_BT=mb.old_logp,
            ref_logp_BT=mb.ref_logp,
        )  # fmt: skip
        return loss, units.round().to(torch.int), {}

    engine.zero_grads(stack.policy, stack.optimizer)
    engine.run_schedule(stack.policy, batches, loss_fn, forward_only=False, device=stack.par.device)
    engine.optimizer_step(stack.optimizer, stack.scheduler)


class _SavedBytes:
    """Bytes of the distinct storages autograd saves, parameters excluded."""

    def __init__(self, params) -> None:
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.seen: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if torch._C._current_graph_task_id() != -1:
            return tensor  # saved while backward recomputes a checkpointed region: transient
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.skip:
            self.seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def _state_bytes(stack) -> tuple[int, int, int]:
    params = [p for chunk in stack.policy for p in chunk.parameters()]
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(
        b.grad_data.numel() * b.grad_data.element_size()
        for chunk in stack.policy
        for b in chunk.buffers
    )
    inner = getattr(stack.optimizer, "optimizer", stack.optimizer)
    state = sum(
        t.numel() * t.element_size()
        for s in inner.state.values()
        for t in s.values()
        if torch.is_tensor(t) and t.numel() > 1
    )
    for group in getattr(stack.optimizer, "fp32_from_float16_groups", []):
        state += sum(p.numel() * p.element_size() for p in group)
    return weights, grads, state


def measure_training_step(cfg: VZeroConfig) -> Measured:
    """Measure `cfg` (finalized, CPU, one process); see the module docstring."""
    from vzero_nemo.parallel import destroy_parallel
    from vzero_nemo.training.batching import make_micro_batches
    from vzero_nemo.training.setup import build_stack

    stack = build_stack(cfg, with_reference=False)
    try:
        rows = cfg.train.micro_batch_size
        batches = make_micro_batches(
            _sequences(cfg, stack.tokenizer, rows), stack.tokenizer, cfg.model, rows
        )
        _step(stack, batches, cfg)  # creates the optimizer state
        weights, grads, optimizer = _state_bytes(stack)
        params = [p for chunk in stack.policy for p in chunk.parameters()]
        saved = _SavedBytes(params)
        before = _settle_and_reset_peak()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            _step(stack, batches, cfg)
        peak = _status_kib("VmHWM") * 1024 - before
    finally:
        destroy_parallel()
    return Measured(
        weights=weights,
        gradients=grads,
        optimizer=optimizer,
        activations=saved.total,
        peak_above_static=peak,
        response_tokens=int(batches[0].loss_mask[0].sum()),
    )


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import add_config_arguments, config_from_argv

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.plan.measure", description=__doc__)
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--json", type=Path, help="write the measured bytes here")
    args, cfg = config_from_argv(parser, argv, world_size=1)
    measured = measure_training_step(cfg)
    print(json.dumps(asdict(measured), indent=2))
    if args.json:
        args.json.write_text(json.dumps(asdict(measured), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
