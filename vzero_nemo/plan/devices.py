"""Accelerators the planner and the throughput benchmark size jobs for.

    from vzero_nemo.plan.devices import device_spec
    h100 = device_spec("h100-80gb")          # memory, dense bf16 peak, memory bandwidth

GPU figures are the vendors' datasheet numbers for the SXM parts: dense (not sparse) bf16
tensor-core peak, HBM bandwidth, and the memory `nvidia-smi` reports. `cpu` has no datasheet:
its memory is this machine's RAM and its peak and bandwidth are measured on demand
(`measure_cpu`: an fp32 matmul and a large copy with torch), and every printout says so.
`config.LaunchConfig.gpu` lists the same names (a unit test keeps them equal).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceSpec:
    name: str
    """Key in `DEVICES` and value of `launch.gpu`."""
    description: str
    memory_bytes: int
    """Device memory (GPU) or this machine's RAM (cpu)."""
    reserved_bytes: int
    """Memory the planner keeps free: CUDA context, NCCL buffers, allocator fragmentation."""
    peak_flops: float
    """Dense matmul peak in FLOP/s: bf16 tensor cores (GPU), measured fp32 (cpu)."""
    memory_bandwidth: float
    """Bytes/s: HBM (GPU datasheet) or a measured copy (cpu)."""
    source: str
    """Where the numbers come from."""

    @property
    def usable_bytes(self) -> int:
        return self.memory_bytes - self.reserved_bytes


def _gpu(name: str, description: str, memory_mib: int, tflops: float, tbps: float) -> DeviceSpec:
    return DeviceSpec(
        name=name,
        description=description,
        memory_bytes=memory_mib * MiB,
        reserved_bytes=4 * GiB,
        peak_flops=tflops * 1e12,
        memory_bandwidth=tbps * 1e12,
        source="datasheet (SXM, dense bf16)",
    )


GPUS: dict[str, DeviceSpec] = {
    "h100-80gb": _gpu("h100-80gb", "NVIDIA H100 80GB HBM3 SXM", 81_559, 989.4, 3.35),
    "h200-141gb": _gpu("h200-141gb", "NVIDIA H200 141GB HBM3e SXM", 143_771, 989.4, 4.8),
    "a100-80gb": _gpu("a100-80gb", "NVIDIA A100 80GB SXM", 81_920, 312.0, 2.039),
}
DEVICE_NAMES = (*GPUS, "cpu")


def device_spec(name: str, *, timing: bool = True) -> DeviceSpec:
    """The spec of `name`. `cpu` is measured on this machine the first time it is asked for;
    with `timing=False` only its memory is filled (peak and bandwidth NaN, nothing measured)."""
    if name == "cpu":
        if timing:
            return measure_cpu()
        return DeviceSpec(
            name="cpu",
            description=f"this machine's CPU ({os.cpu_count()} cores)",
            memory_bytes=host_memory_bytes(),
            reserved_bytes=0,
            peak_flops=float("nan"),
            memory_bandwidth=float("nan"),
            source="RAM of this machine (peak not measured)",
        )
    if name not in GPUS:
        raise ValueError(f"unknown device {name!r}; set launch.gpu to one of {list(DEVICE_NAMES)}")
    return GPUS[name]


def capacity_bytes(spec: DeviceSpec, processes_per_node: int) -> int:
    """Memory one process may use: a GPU's usable memory, or the RAM split among the
    processes of a CPU node."""
    if spec.name == "cpu":
        return spec.usable_bytes // processes_per_node
    return spec.usable_bytes


def spec_for_cuda_name(cuda_name: str) -> DeviceSpec | None:
    """The datasheet spec matching `torch.cuda.get_device_name()` (e.g. 'NVIDIA H100 80GB
    HBM3'), or None for a GPU not in the table."""
    upper = cuda_name.upper()
    for key, token in (("h200-141gb", "H200"), ("h100-80gb", "H100"), ("a100-80gb", "A100")):
        if token in upper:
            return GPUS[key]
    return None


def host_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@functools.cache
def measure_cpu(matmul_size: int = 1024, copy_mib: int = 256) -> DeviceSpec:
    """This machine as a device: RAM, the best fp32 matmul rate and copy bandwidth of a few
    tries with torch's current thread count (set OMP_NUM_THREADS to what the run uses)."""
    import torch

    a = torch.randn(matmul_size, matmul_size)
    b = torch.randn(matmul_size, matmul_size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    flops = 2 * matmul_size**3 / best
    src = torch.empty(copy_mib * MiB // 4)
    dst = torch.empty_like(src)
    best_copy = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        dst.copy_(src)
        best_copy = min(best_copy, time.perf_counter() - start)
    threads = torch.get_num_threads()
    return DeviceSpec(
        name="cpu",
        description=f"this machine's CPU ({os.cpu_count()} cores, {threads} torch threads)",
        memory_bytes=host_memory_bytes(),
        reserved_bytes=0,
        peak_flops=flops,
        memory_bandwidth=2 * src.numel() * 4 / best_copy,
        source=f"measured: fp32 {matmul_size}^3 matmul, {copy_mib} MiB copy, {threads} threads",
    )
