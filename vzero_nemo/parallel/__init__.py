"""Process groups (TP / PP / DP) and the CPU compatibility layer for megatron-core."""

from vzero_nemo.parallel.groups import (
    ParallelState,
    all_gather_objects,
    all_reduce_max,
    all_reduce_sum,
    broadcast_object,
    destroy_parallel,
    get_group,
    get_parallel_state,
    initialize_parallel,
    seed_all,
)

__all__ = [
    "ParallelState",
    "all_gather_objects",
    "all_reduce_max",
    "all_reduce_sum",
    "broadcast_object",
    "destroy_parallel",
    "get_group",
    "get_parallel_state",
    "initialize_parallel",
    "seed_all",
]
