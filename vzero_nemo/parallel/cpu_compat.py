"""CPU compatibility layer for megatron-core 0.19 and Megatron-Bridge 0.6 (no CUDA, no TE).

This is the one place where the project bends Megatron to run on a machine without CUDA.
With CUDA and transformer-engine (the NGC container) `install()` does nothing and returns
False: the stack runs unmodified. With CUDA but no transformer-engine (a workstation with
pip-installed torch) it applies item 1 only, prints one line saying so, and the provider uses
megatron-core's local layer spec. Without CUDA it applies, once per process, exactly these
changes:

1. **transformer_engine import shim.** Megatron-Bridge imports `transformer_engine.pytorch`
   unconditionally (PEFT LoRA layers, pulled in by `megatron.bridge`'s package import), so no
   Bridge model provider imports without it. A minimal `transformer_engine` package (version
   2.12.0, the NGC 26.08 line) is registered in `sys.modules`. It holds only the names Bridge
   touches at import time (`pytorch.Linear`, `pytorch.LayerNormLinear`,
   `pytorch.ops.Sequential`); instantiating any of them raises `RuntimeError`. Every other
   name or submodule is absent, so megatron-core's own probes (`from
   transformer_engine.pytorch.fp8 import ...`) still fail and it keeps `HAVE_TE = False`.
   The megatron-core modules whose probe is a bare `import transformer_engine` are imported
   BEFORE the shim exists (`_TE_PROBING_MODULES`), and megatron-core's cached TE version is
   pinned to 0.0.0 first, so megatron-core never believes TE is present.
   `te_detected_modules()` lists any loaded megatron-core module that does; it must be empty.
2. **torch.cuda device-module calls -> torch.cpu.** `current_device`, `synchronize`,
   `current_stream`, `Stream`, `stream`, `Event` are replaced by their `torch.cpu` twins
   (`_TORCH_CUDA_TO_CPU`). Megatron calls them on hard-coded CUDA paths (RoPE moves
   `inv_freq` to `torch.cuda.current_device()`, DDP buffers are allocated there, the
   pipeline schedule and the optimizer synchronise streams). Without CUDA each of these
   would raise, so replacing them changes no working behaviour. Plain function swaps: zero
   cost per call, and safe inside the model's forward.
3. **Causal-mask builders.** `megatron.core.transformer.utils.get_default_causal_mask` (and
   the sliding-window one) build the mask with `device="cuda"`; the unfused softmax of every
   attention layer calls them. They are replaced by cached CPU builders in every module that
   imported them by name (`_MASK_BUILDER_SITES`), which keeps the forward free of the
   torch-function mode below.
4. **`cuda_redirect()`**, a `TorchFunctionMode` that rewrites `device="cuda"` (string, index
   or `torch.device`) to CPU in tensor factories, turns `Tensor.cuda()` into a CPU no-op and
   makes `Tensor.type()` report CUDA type names (the optimizer asserts on them).
   Megatron's optimizer (`device='cuda'` scalars in grad clipping and found-inf checks), DDP
   (a warm-up tensor), the pipeline schedule (token counters) and dist-checkpoint loading
   create tensors that way. The mode costs ~10 us per torch call, so wrap only those calls
   (optimizer construction and `step()`, DDP construction, `forward_backward_func`,
   dist-checkpoint load/save), and decorate the `forward_step_func` a schedule runs with
   `outside_cuda_redirect` so the model's forward never pays for it.
5. **RNG.** Megatron's CUDA RNG tracker reads and writes `torch.cuda` generator state;
   `seed_model_parallel_rng(seed)` seeds with `model_parallel_cuda_manual_seed(seed,
   inference_rng_tracker=True)` whose tracker forks nothing. With
   `use_cpu_initialization=True` weights come from the CPU generator: bit-identical for any
   TP or DP size under the same seed (tests/distributed checks it), but not across pipeline
   stages, which each restart the stream (start PP runs from a checkpoint). Dropout must be
   0 on CPU, since tensor-parallel regions get no per-rank RNG stream. Activation recompute
   (`model.recompute`) saves and restores the CUDA generator state around each checkpointed
   region (`tensor_parallel.random._get/_set_cuda_rng_state`); on CPU there is none, so those
   two read an empty state and restore nothing (the CPU state is kept by the same code).

To cover another hard CUDA call, add it to the matching table (`_TORCH_CUDA_TO_CPU`,
`_MASK_BUILDER_SITES`, `_TE_PROBING_MODULES`, `_TE_PYTORCH_NAMES`) with a comment naming
the megatron call site; keep one mechanism per kind of call.

Usage (the parallel layer calls it; call it yourself before importing Megatron-Bridge):

    from vzero_nemo.parallel import cpu_compat
    cpu_compat.install()
    from megatron.bridge.models.qwen_vl.qwen25_vl_provider import Qwen25VLModelProvider
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

TE_SHIM_VERSION = "2.12.0"
_SHIM_DOC = "CPU import shim registered by vzero_nemo.parallel.cpu_compat."

# megatron-core modules whose transformer_engine probe is a bare `import transformer_engine`
# (the shim would satisfy it): import them while the import still fails.
_TE_PROBING_MODULES = (
    "megatron.core.fp8_utils",
    "megatron.core.fp4_utils",
    "megatron.core.transformer.mlp",
    "megatron.core.models.vision.clip_vit_model",
    "megatron.core.models.gpt.experimental_attention_variant_module_specs",
    "megatron.core.inference.text_generation_controllers.text_generation_controller",
)

# Names Megatron-Bridge reads from transformer_engine.pytorch at import time
# (megatron/bridge/peft/lora_layers.py: annotations and isinstance checks).
_TE_PYTORCH_NAMES = ("Linear", "LayerNormLinear")
_TE_PYTORCH_OPS_NAMES = ("Sequential",)

# torch.cuda attribute -> torch.cpu twin.
_TORCH_CUDA_TO_CPU = {
    "current_device": "current_device",  # RoPE inv_freq, DDP buffers, schedules
    "synchronize": "synchronize",  # optimizer / checkpoint timing barriers
    "current_stream": "current_stream",  # DDP grad-sync and schedule stream waits
    "Stream": "Stream",  # pipeline_parallel.utils comm streams
    "stream": "stream",  # `with torch.cuda.stream(s):` around comms
    "Event": "Event",  # DDP / schedule event records
}

# (module, attribute) holding a `device="cuda"` mask builder -> CPU replacement name.
_MASK_BUILDER_SITES = (
    ("megatron.core.transformer.utils", "get_default_causal_mask", "causal"),
    ("megatron.core.fusions.fused_softmax", "get_default_causal_mask", "causal"),
    ("megatron.core.transformer.utils", "get_sliding_window_causal_mask", "sliding"),
    ("megatron.core.fusions.fused_softmax", "get_sliding_window_causal_mask", "sliding"),
)

# megatron.core.tensor_parallel.random functions touching the CUDA generator during recompute.
_RNG_STATE_SITES = ("_get_cuda_rng_state", "_set_cuda_rng_state")

_installed = False
_te_shimmed = False
_real_te: bool | None = None


def cuda_available() -> bool:
    """The single decision point: the compat layer applies only when this is False."""
    return torch.cuda.is_available()


def transformer_engine_available() -> bool:
    """Whether a real transformer-engine is importable (decided once, before any shim)."""
    global _real_te
    if _real_te is None:
        _real_te = not _te_shimmed and importlib.util.find_spec("transformer_engine") is not None
    return _real_te


def layer_spec_choice() -> str:
    """Which layer spec a model built in this process uses, and why (printed by --dry-run)."""
    if transformer_engine_available():
        return "transformer-engine layer spec (fused attention and kernels)"
    return f"megatron-core local layer spec: {TE_MISSING}"


TE_MISSING = (
    "transformer-engine not found, so norms, MLPs and rotary embeddings run unfused and "
    "attention is PyTorch's SDPA (more activation memory, slower steps than TE's kernels); "
    "it ships in the NGC NeMo container"
)


def is_installed() -> bool:
    """Whether the CPU part of the layer (CUDA redirection) is active."""
    return _installed


def install() -> bool:
    """Apply what this machine needs, once. Returns True if the CPU layer is active.

    Without transformer-engine (CPU, or a GPU workstation with pip-installed torch) the
    import shim (item 1) is registered so Megatron-Bridge imports and the local layer spec is
    used; with CUDA nothing else changes. Without CUDA items 2-5 apply too. Idempotent.
    """
    global _installed, _te_shimmed
    if not transformer_engine_available() and not _te_shimmed:
        _pin_megatron_te_absent()
        _register_transformer_engine_shim()
        _te_shimmed = True
        if cuda_available() and int(os.environ.get("RANK", "0")) == 0:
            print(f"[vzero] {TE_MISSING}: using megatron-core's local layer spec", file=sys.stderr)
    if cuda_available():
        return False
    if _installed:
        return True
    _redirect_torch_cuda()
    _patch_mask_builders()
    _patch_rng_state()
    _installed = True
    leaked = te_detected_modules()
    if leaked:
        raise RuntimeError(
            f"megatron-core modules {leaked} detected the transformer_engine shim; add them "
            "to cpu_compat._TE_PROBING_MODULES so they import before the shim"
        )
    return True


# ------------------------------------------------------------------ transformer_engine shim


def _pin_megatron_te_absent() -> None:
    import megatron.core.utils as mcore_utils

    for name in _TE_PROBING_MODULES:
        importlib.import_module(name)
    # Caches PkgVersion("0.0.0") in megatron.core.utils._te_version while TE is unimportable,
    # so megatron-core's is_te_min_version() stays False after the shim appears.
    mcore_utils.get_te_version()


def _unavailable_class(qualname: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            f"transformer_engine.{qualname} is unavailable: transformer-engine has no CPU "
            "build; build the model with megatron-core's local layer spec"
        )

    name = qualname.rsplit(".", 1)[-1]
    return type(name, (), {"__init__": __init__, "__module__": "transformer_engine"})


def _new_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package: submodule imports consult sys.modules, then fail
    module.__doc__ = _SHIM_DOC
    return module


def _register_transformer_engine_shim() -> None:
    if "transformer_engine" in sys.modules:
        existing = sys.modules["transformer_engine"]
        if getattr(existing, "__doc__", None) != _SHIM_DOC:
            raise RuntimeError("a real transformer_engine is importable; CUDA should be present")
        return
    te = _new_module("transformer_engine")
    te.__version__ = TE_SHIM_VERSION
    te_pytorch = _new_module("transformer_engine.pytorch")
    te_ops = _new_module("transformer_engine.pytorch.ops")
    for name in _TE_PYTORCH_NAMES:
        setattr(te_pytorch, name, _unavailable_class(f"pytorch.{name}"))
    for name in _TE_PYTORCH_OPS_NAMES:
        setattr(te_ops, name, _unavailable_class(f"pytorch.ops.{name}"))
    te.pytorch = te_pytorch
    te_pytorch.ops = te_ops
    sys.modules.update(
        {
            "transformer_engine": te,
            "transformer_engine.pytorch": te_pytorch,
            "transformer_engine.pytorch.ops": te_ops,
        }
    )


def te_detected_modules() -> list[str]:
    """Loaded megatron-core modules that believe transformer_engine is present (want: [])."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("megatron.core") and getattr(module, "HAVE_TE", False) is True
    )


# ------------------------------------------------------------------ torch.cuda redirection


def _redirect_torch_cuda() -> None:
    for cuda_name, cpu_name in _TORCH_CUDA_TO_CPU.items():
        setattr(torch.cuda, cuda_name, getattr(torch.cpu, cpu_name))


@functools.lru_cache(maxsize=32)
def _cpu_causal_mask(sq: int) -> torch.Tensor:
    return torch.triu(torch.ones(sq, sq, dtype=torch.bool), diagonal=1)


def _cpu_sliding_window_causal_mask(
    sq: int, skv: int, window_size: tuple[int, int]
) -> torch.Tensor:
    ones = torch.ones(sq, skv, dtype=torch.bool)
    upper = torch.triu(ones, diagonal=skv - sq - window_size[0])
    return ~torch.tril(upper, diagonal=skv - sq + window_size[1])


_MASK_BUILDERS = {"causal": _cpu_causal_mask, "sliding": _cpu_sliding_window_causal_mask}


def _patch_mask_builders() -> None:
    for module_name, attr, kind in _MASK_BUILDER_SITES:
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            raise RuntimeError(f"{module_name}.{attr} not found; megatron-core changed, update")
        setattr(module, attr, _MASK_BUILDERS[kind])


def _no_cuda_rng_state(*args: Any, **kwargs: Any) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8)


def _patch_rng_state() -> None:
    module = importlib.import_module("megatron.core.tensor_parallel.random")
    for attr in _RNG_STATE_SITES:
        if not hasattr(module, attr):
            raise RuntimeError(f"{module.__name__}.{attr} not found; megatron-core changed, update")
        setattr(module, attr, _no_cuda_rng_state)


# ------------------------------------------------------------------ device="cuda" mode


def _is_cuda_device(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.split(":", 1)[0] == "cuda"
    return isinstance(device, int) and not isinstance(device, bool)


_CPU = torch.device("cpu")


class CudaToCpuMode(TorchFunctionMode):
    """Rewrites CUDA device arguments to CPU; `Tensor.cuda()` returns the tensor itself;
    `Tensor.type()` names CPU tensors as their CUDA type (the optimizer asserts
    `grad.type() == 'torch.cuda.FloatTensor'` and dispatches on it for bf16 masters)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: A002
        kwargs = kwargs or {}
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return (
                name.replace("torch.", "torch.cuda.", 1) if args[0].device.type == "cpu" else name
            )
        if "device" in kwargs and _is_cuda_device(kwargs["device"]):
            kwargs = {**kwargs, "device": _CPU}
        if func is torch.Tensor.to and len(args) > 1 and _is_cuda_device(args[1]):
            args = (args[0], _CPU, *args[2:])
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_redirect() -> Iterator[None]:
    """Scope in which Megatron's `device="cuda"` tensor creation lands on CPU.

    A no-op unless `install()` is active. Use around optimizer / DDP / schedule /
    dist-checkpoint calls only, and keep the model's forward out of it with
    `outside_cuda_redirect` (see the module docstring for the cost).
    """
    if not _installed:
        yield
        return
    with CudaToCpuMode():
        yield


@contextlib.contextmanager
def suspend_cuda_redirect() -> Iterator[None]:
    """Leave an enclosing `cuda_redirect()` for the body (a no-op outside one)."""
    if not isinstance(torch.overrides._get_current_function_mode(), CudaToCpuMode):
        yield
        return
    with torch.overrides._pop_mode_temporarily():
        yield


def outside_cuda_redirect[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run `fn` (e.g. the `forward_step_func` a pipeline schedule calls inside
    `cuda_redirect()`) without the torch-function mode, at full speed."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with suspend_cuda_redirect():
            return fn(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------ RNG


def seed_model_parallel_rng(seed: int) -> None:
    """Megatron's model-parallel RNG seeding without CUDA generators (after parallel init)."""
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    if not _installed:
        raise RuntimeError("cpu_compat.install() must run before seed_model_parallel_rng")
    model_parallel_cuda_manual_seed(seed, inference_rng_tracker=True, force_reset_rng=True)
