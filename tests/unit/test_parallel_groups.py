"""initialize_parallel in a single process (no torchrun) and the layout / backend checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vzero_nemo.config import ParallelConfig
from vzero_nemo.parallel import groups

pytestmark = pytest.mark.unit

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK")


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def test_resolve_backend():
    assert groups.resolve_backend("auto", cuda_available=False) == "gloo"
    assert groups.resolve_backend("auto", cuda_available=True) == "nccl"
    assert groups.resolve_backend("gloo", cuda_available=True) == "gloo"
    with pytest.raises(ValueError, match="parallel.backend=nccl needs CUDA"):
        groups.resolve_backend("nccl", cuda_available=False)
    with pytest.raises(ValueError, match="mpi"):
        groups.resolve_backend("mpi", cuda_available=False)


@pytest.mark.parametrize(
    ("tp", "pp", "dp", "vpp", "world", "message"),
    [
        (2, 1, None, None, 3, "world size 3 does not split into TP=2 x PP=1"),
        (1, 2, None, None, 1, "world size 1 does not split into TP=1 x PP=2"),
        (1, 1, 4, None, 2, "data_parallel_size=4 but world size 2"),
        (1, 1, None, 2, 2, "needs pipeline_model_parallel_size >= 2"),
    ],
)
def test_bad_layouts_are_rejected(tp, pp, dp, vpp, world, message):
    cfg = ParallelConfig(
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        data_parallel_size=dp,
        virtual_pipeline_model_parallel_size=vpp,
    )
    with pytest.raises(ValueError, match=message):
        groups._check_layout(cfg, world)


def test_check_layout_derives_dp():
    cfg = ParallelConfig(tensor_model_parallel_size=2, pipeline_model_parallel_size=2)
    assert groups._check_layout(cfg, 8) == 2


def test_partial_torchrun_env_is_an_error(no_torchrun_env, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="partial torchrun environment"):
        groups.initialize_parallel(ParallelConfig(backend="gloo"), seed=1)
    groups.destroy_parallel()


def test_single_process_world(no_torchrun_env):
    state = groups.initialize_parallel(ParallelConfig(), seed=7)
    try:
        expected_backend = "nccl" if torch.cuda.is_available() else "gloo"
        assert (state.rank, state.world_size, state.tp_size, state.pp_size, state.dp_size) == (
            0,
            1,
            1,
            1,
            1,
        )
        assert state.backend == expected_backend and state.is_main and state.is_last_stage
        assert state.cpu_compat is (not torch.cuda.is_available())
        assert groups.get_parallel_state() is state
        assert groups.all_reduce_sum(2.5) == 2.5
        assert groups.all_reduce_max(-1.0, group="world") == -1.0
        summed = groups.all_reduce_sum(torch.tensor([1.0, 2.0], device=state.device), "world")
        assert summed.tolist() == [1.0, 2.0]
        assert groups.all_gather_objects({"a": 1}) == [{"a": 1}]
        assert groups.broadcast_object("x") == "x"
        with pytest.raises(ValueError, match="group='cp'"):
            groups.get_group("cp")
        with pytest.raises(RuntimeError, match="already initialised; call destroy_parallel"):
            groups.initialize_parallel(ParallelConfig(), seed=7)
        first = torch.rand(3)
    finally:
        groups.destroy_parallel()
    with pytest.raises(RuntimeError, match="not initialised"):
        groups.get_parallel_state()
    # Re-initialising with the same seed reproduces the same random stream.
    groups.initialize_parallel(ParallelConfig(), seed=7)
    try:
        assert torch.equal(torch.rand(3), first)
    finally:
        groups.destroy_parallel()


def test_collective_check_rejects_tensors_not_placed_on_the_comm_device(no_torchrun_env):
    from vzero_nemo.parallel.collective_check import CollectiveDeviceError, check_collectives

    groups.initialize_parallel(ParallelConfig(backend="gloo"), seed=0)
    try:
        with check_collectives(packages=("vzero_nemo", __name__)):
            # The helpers place their tensors on the communication device: accepted.
            assert groups.all_reduce_sum(2.5) == 2.5
            assert groups.all_reduce_sum(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]
            placed = groups.comm_tensor([1.0, 2.0])
            torch.distributed.all_reduce(placed)
            # A tensor built where it happens to be, handed straight to a collective: caught,
            # on CPU as it would fail under NCCL.
            with pytest.raises(CollectiveDeviceError, match=r"all_reduce with a \(2,\) tensor"):
                torch.distributed.all_reduce(torch.zeros(2))
        torch.distributed.all_reduce(torch.zeros(2))  # outside the check: unchanged
    finally:
        groups.destroy_parallel()


def test_to_comm_moves_to_the_declared_device(no_torchrun_env, monkeypatch):
    groups.initialize_parallel(ParallelConfig(backend="gloo"), seed=0)
    try:
        state = groups.get_parallel_state()
        monkeypatch.setattr(
            groups, "_state", dataclasses.replace(state, comm_device=torch.device("meta"))
        )
        assert groups.to_comm(torch.ones(2)).device.type == "meta"
        assert groups.comm_tensor([1.0]).device.type == "meta"
    finally:
        groups.destroy_parallel()
