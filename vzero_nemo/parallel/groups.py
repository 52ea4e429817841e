"""Process groups for TP / PP / DP: torch.distributed + megatron-core parallel state.

`initialize_parallel(cfg.parallel, seed)` is the one entry point every process calls:

- Under torchrun (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK set) it joins
  the job through `env://`; without them it forms a world of one over an in-process store
  (no port, no file), so the same code runs a single CPU process.
- Backend: `parallel.backend=auto` picks nccl with CUDA and gloo without; on CPU the
  compatibility layer (`cpu_compat.install()`) is applied first.
- megatron-core groups: `initialize_model_parallel(TP, PP, VPP)`; DP = world / (TP * PP).
- Seeds: Python, NumPy and torch from `seed` (identical on every rank, so CPU-initialised
  weights do not depend on the layout), then Megatron's model-parallel RNG tracker.

    torchrun --nproc-per-node 2 -m vzero_nemo.train --recipe tiny_cpu \\
        parallel.tensor_model_parallel_size=2

The reduction helpers (`all_reduce_sum`, ...) take a group name (`dp`, `tp`, `pp`, `world`)
and work on floats or tensors, so the trainer passes plain numbers to `algorithms/`.

Every tensor the project hands to a collective goes through `to_comm` (or is allocated by
`comm_tensor`) first: NCCL only reduces CUDA tensors, gloo only CPU ones, and a metric built
on the CPU in a GPU job would otherwise fail there ("No backend type associated with device
type cpu") while every CPU test passes. `parallel.check_collectives=true` (see
`collective_check`) asserts this for every collective the project's own code issues.
"""

from __future__ import annotations

import datetime
import os
import random
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist

from vzero_nemo.config import ParallelConfig
from vzero_nemo.parallel import cpu_compat

GroupName = Literal["dp", "tp", "pp", "world"]
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelState:
    """Where this process sits in the job. Built by `initialize_parallel`."""

    rank: int
    world_size: int
    local_rank: int
    tp_rank: int
    tp_size: int
    pp_rank: int
    pp_size: int
    vpp_size: int | None
    dp_rank: int
    dp_size: int
    device: torch.device
    """Where this rank's model and batches live (cuda:<local_rank> or cpu)."""
    comm_device: torch.device
    """Where tensors handed to this backend's collectives must live: cuda:<local_rank> for
    nccl, cpu for gloo."""
    backend: str
    """torch.distributed backend actually used: `gloo` or `nccl`."""
    cpu_compat: bool
    """Whether the CPU compatibility layer is active (no CUDA)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1


_state: ParallelState | None = None


def resolve_backend(backend: str, cuda_available: bool) -> str:
    """`auto` -> nccl with CUDA, gloo without; nccl without CUDA is an error."""
    if backend == "auto":
        return "nccl" if cuda_available else "gloo"
    if backend == "nccl" and not cuda_available:
        raise ValueError("parallel.backend=nccl needs CUDA; use parallel.backend=gloo (or auto)")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"parallel.backend={backend!r}; choose one of auto, gloo, nccl")
    return backend


def _check_layout(parallel: ParallelConfig, world_size: int) -> int:
    tp = parallel.tensor_model_parallel_size
    pp = parallel.pipeline_model_parallel_size
    if tp < 1 or pp < 1 or world_size % (tp * pp) != 0:
        raise ValueError(
            f"world size {world_size} does not split into TP={tp} x PP={pp} x DP; launch a "
            "multiple of TP*PP processes or change parallel.tensor_model_parallel_size / "
            "parallel.pipeline_model_parallel_size"
        )
    dp = world_size // (tp * pp)
    if parallel.data_parallel_size not in (None, dp):
        raise ValueError(
            f"parallel.data_parallel_size={parallel.data_parallel_size} but world size "
            f"{world_size} / (TP {tp} * PP {pp}) = {dp}; leave it unset to derive it"
        )
    if parallel.virtual_pipeline_model_parallel_size is not None and pp < 2:
        raise ValueError(
            "parallel.virtual_pipeline_model_parallel_size needs "
            f"pipeline_model_parallel_size >= 2, got {pp}"
        )
    return dp


def _init_process_group(backend: str, timeout_s: float) -> None:
    timeout = datetime.timedelta(seconds=timeout_s)
    if all(name in os.environ for name in _TORCHRUN_VARS):
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
        return
    missing = [name for name in _TORCHRUN_VARS if name in os.environ]
    if missing:
        raise ValueError(
            f"partial torchrun environment ({missing} set, not all of {list(_TORCHRUN_VARS)}); "
            "launch with torchrun or unset them for a single process"
        )
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)


def _join_world(parallel: ParallelConfig, backend: str, timeout_s: float) -> tuple[int, int]:
    """Reuse a matching process group or start one; returns (world size, DP size)."""
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise ValueError(
                f"the running process group uses {dist.get_backend()}, not parallel.backend="
                f"{parallel.backend} ({backend}); destroy it or set parallel.backend to match"
            )
        world_size = dist.get_world_size()
        return world_size, _check_layout(parallel, world_size)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    dp = _check_layout(parallel, world_size)
    _init_process_group(backend, timeout_s)
    assert dist.get_world_size() == world_size, (dist.get_world_size(), world_size)
    return world_size, dp


def initialize_parallel(
    parallel: ParallelConfig, seed: int, *, timeout_s: float = 1800.0
) -> ParallelState:
    """Initialise torch.distributed (unless already up) and megatron-core groups; seed RNGs.

    An existing process group is reused (e.g. after `destroy_parallel(keep_process_group=
    True)` to switch layouts) if its backend matches. Raises ValueError for a layout that
    does not fit the world size or an impossible backend, RuntimeError when megatron's
    groups are already initialised (call `destroy_parallel()` first).
    """
    global _state
    from megatron.core import parallel_state as mpu

    if mpu.model_parallel_is_initialized():
        raise RuntimeError("model parallel groups are already initialised; call destroy_parallel()")
    cuda = cpu_compat.cuda_available()
    backend = resolve_backend(parallel.backend, cuda)
    compat = cpu_compat.install()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")

    world_size, dp = _join_world(parallel, backend, timeout_s)
    mpu.initialize_model_parallel(
        tensor_model_parallel_size=parallel.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=parallel.virtual_pipeline_model_parallel_size,
        distributed_timeout_minutes=max(1, int(timeout_s // 60)),
    )
    seed_all(seed)
    _state = ParallelState(
        rank=dist.get_rank(),
        world_size=world_size,
        local_rank=local_rank,
        tp_rank=mpu.get_tensor_model_parallel_rank(),
        tp_size=mpu.get_tensor_model_parallel_world_size(),
        pp_rank=mpu.get_pipeline_model_parallel_rank(),
        pp_size=mpu.get_pipeline_model_parallel_world_size(),
        vpp_size=parallel.virtual_pipeline_model_parallel_size,
        dp_rank=mpu.get_data_parallel_rank(),
        dp_size=mpu.get_data_parallel_world_size(),
        device=device,
        comm_device=device,
        backend=backend,
        cpu_compat=compat,
    )
    assert _state.dp_size == dp, (_state.dp_size, dp)
    return _state


def seed_all(seed: int) -> None:
    """Same seed on every rank for Python, NumPy, torch, then Megatron's RNG tracker."""
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if cpu_compat.is_installed():
        cpu_compat.seed_model_parallel_rng(seed)
    else:
        model_parallel_cuda_manual_seed(seed)


def get_parallel_state() -> ParallelState:
    if _state is None:
        raise RuntimeError("parallel state is not initialised; call initialize_parallel() first")
    return _state


def destroy_parallel(*, keep_process_group: bool = False) -> None:
    """Tear down megatron-core groups and (unless kept) the process group. Idempotent.

    Keep the process group to re-initialise another TP/PP layout in the same processes.
    """
    global _state
    from megatron.core import parallel_state as mpu

    mpu.destroy_model_parallel()
    if dist.is_initialized() and not keep_process_group:
        dist.destroy_process_group()
    _state = None


# ------------------------------------------------------------------ reductions


def get_group(group: GroupName) -> dist.ProcessGroup:
    from megatron.core import parallel_state as mpu

    getters = {
        "dp": mpu.get_data_parallel_group,
        "tp": mpu.get_tensor_model_parallel_group,
        "pp": mpu.get_pipeline_model_parallel_group,
        "world": lambda: dist.group.WORLD,
    }
    if group not in getters:
        raise ValueError(f"group={group!r}; choose one of {list(getters)}")
    return getters[group]()


# Tensors placed on the communication device by `to_comm` / `comm_tensor` while a collective
# check is active (`vzero_nemo.parallel.collective_check`); None otherwise.
# Keyed by id(): tensors compare element-wise, so they cannot sit in a WeakSet.
_placed: weakref.WeakValueDictionary | None = None


def to_comm(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` on this rank's communication device (itself if it is already there)."""
    out = tensor.to(get_parallel_state().comm_device)
    if _placed is not None:
        _placed[id(out)] = out
    return out


def placed_on_comm_device(tensor: torch.Tensor) -> bool:
    """Whether `tensor` came from `to_comm` / `comm_tensor` while a collective check runs."""
    return _placed is not None and _placed.get(id(tensor)) is tensor


def comm_tensor(values: list[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A new 1-D tensor of `values` on the communication device."""
    return to_comm(torch.tensor(values, dtype=dtype))


def _reduce(value: torch.Tensor | float, group: GroupName, op: dist.ReduceOp) -> Any:
    if isinstance(value, torch.Tensor):
        out = to_comm(value.detach().clone())
        dist.all_reduce(out, op=op, group=get_group(group))
        return out.to(value.device)
    tensor = comm_tensor([float(value)])
    dist.all_reduce(tensor, op=op, group=get_group(group))
    return tensor.item()


def all_reduce_sum(value: torch.Tensor | float, group: GroupName = "dp") -> Any:
    """Sum over `group`. A tensor comes back as a new tensor on its own device, a number as
    a float; either travels on the communication device."""
    return _reduce(value, group, dist.ReduceOp.SUM)


def all_reduce_max(value: torch.Tensor | float, group: GroupName = "dp") -> Any:
    """Maximum over `group` (tensor -> tensor, number -> float)."""
    return _reduce(value, group, dist.ReduceOp.MAX)


def all_gather_objects(obj: Any, group: GroupName = "dp") -> list[Any]:
    """Every rank's picklable `obj`, in group-rank order."""
    pg = get_group(group)
    out: list[Any] = [None] * dist.get_world_size(pg)
    dist.all_gather_object(out, obj, group=pg)
    return out


def broadcast_object(obj: Any, src_rank: int = 0) -> Any:
    """`obj` from global rank `src_rank` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=src_rank)
    return box[0]
