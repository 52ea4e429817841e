"""Check that every collective the project issues gets tensors on the communication device.

    python -m vzero_nemo.train --recipe tiny_cpu parallel.check_collectives=true ...

Under NCCL a collective on a CPU tensor fails ("No backend type associated with device type
cpu"); under gloo every device is the CPU, so a CPU-only test suite cannot see the mistake.
This check makes it visible anywhere: while active, each `torch.distributed` collective called
from a `vzero_nemo` module must receive tensors that `parallel.groups.to_comm` /
`comm_tensor` placed on the parallel state's `comm_device`; anything else raises
`CollectiveDeviceError` naming the call site, the collective and the tensor's device.
Collectives issued by torch or megatron-core themselves (object collectives, DDP, the
pipeline schedule) work on the model's own tensors and are not checked.

The check wraps the module-level functions of `torch.distributed` for the duration of the
`with` block; the cost is a stack-frame lookup per collective.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from vzero_nemo.parallel import groups

CHECKED = (
    "all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor",
    "broadcast", "send", "recv", "isend", "irecv", "reduce", "gather", "scatter",
)  # fmt: skip
PACKAGES = ("vzero_nemo",)


class CollectiveDeviceError(RuntimeError):
    """A collective received a tensor that was not placed on the communication device."""


def _tensors(args: tuple, kwargs: dict) -> Iterator[torch.Tensor]:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, list | tuple):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def _caller() -> tuple[str, int]:
    frame = sys._getframe(2)  # the wrapper's caller
    return frame.f_globals.get("__name__", "?"), frame.f_lineno


def _checked(name: str, func: Callable, packages: tuple[str, ...]) -> Callable:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        module, line = _caller()
        if module.startswith(packages):
            expected = groups.get_parallel_state().comm_device
            for tensor in _tensors(args, kwargs):
                if tensor.device != expected or not groups.placed_on_comm_device(tensor):
                    raise CollectiveDeviceError(
                        f"{module}:{line} calls torch.distributed.{name} with a "
                        f"{tuple(tensor.shape)} tensor on {tensor.device}, not placed on the "
                        f"communication device {expected}; pass it through "
                        "vzero_nemo.parallel.to_comm (or allocate it with comm_tensor)"
                    )
        return func(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def check_collectives(packages: tuple[str, ...] = PACKAGES) -> Iterator[None]:
    """Within the block, collectives called from modules of `packages` (the project) must
    use communication-device tensors."""
    originals = {name: getattr(dist, name) for name in CHECKED}
    previous = groups._placed
    groups._placed = weakref.WeakValueDictionary()
    try:
        for name, func in originals.items():
            setattr(dist, name, _checked(name, func, packages))
        yield
    finally:
        for name, func in originals.items():
            setattr(dist, name, func)
        groups._placed = previous
