"""Point-to-point and broadcast helpers for generation across pipeline and tensor ranks.

Generation runs its own pipeline loop (one forward per token, no micro-batching), so it uses
plain `torch.distributed` send/recv between neighbouring stages instead of megatron-core's
schedules. All helpers take the model's own process groups (`pg_collection`), so they work
for any data-parallel replica. With one stage / one TP rank every call is a no-op.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from vzero_nemo.parallel.groups import to_comm


class PipelineStage:
    """This rank's place in its pipeline group, with the sends and receives it needs."""

    def __init__(self, pp_group: dist.ProcessGroup) -> None:
        ranks = dist.get_process_group_ranks(pp_group)
        self.group = pp_group
        self.index = ranks.index(dist.get_rank())
        self.size = len(ranks)
        self.prev_rank = ranks[self.index - 1] if self.index > 0 else None
        self.next_rank = ranks[self.index + 1] if self.index + 1 < self.size else None
        self.last_rank = ranks[-1]

    @property
    def is_first(self) -> bool:
        return self.index == 0

    @property
    def is_last(self) -> bool:
        return self.index == self.size - 1

    def send_forward(self, hidden: torch.Tensor) -> None:
        assert self.next_rank is not None
        dist.send(to_comm(hidden.contiguous()), dst=self.next_rank, group=self.group)

    def recv_forward(
        self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        assert self.prev_rank is not None
        hidden = to_comm(torch.empty(shape, dtype=dtype, device=device))
        dist.recv(hidden, src=self.prev_rank, group=self.group)
        return hidden.to(device)

    def broadcast_from_last(self, tensor: torch.Tensor) -> torch.Tensor:
        """The last stage's `tensor` on every stage (in place; same shape everywhere)."""
        if self.size > 1:
            buffer = to_comm(tensor)
            dist.broadcast(buffer, src=self.last_rank, group=self.group)
            if buffer is not tensor:
                tensor.copy_(buffer)
        return tensor


def gather_vocab_shards(logits_BV: torch.Tensor, tp_group: dist.ProcessGroup) -> torch.Tensor:
    """Full-vocabulary logits from this rank's vocabulary shard [B, V/tp] -> [B, V]."""
    tp_size = dist.get_world_size(tp_group)
    if tp_size == 1:
        return logits_BV
    local = to_comm(logits_BV.contiguous())
    shards = [to_comm(torch.empty_like(local)) for _ in range(tp_size)]
    dist.all_gather(shards, local, group=tp_group)
    return torch.cat(shards, dim=-1).to(logits_BV.device)
