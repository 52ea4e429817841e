"""CPU compatibility layer: applied only without CUDA; Bridge's Qwen2.5-VL provider imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vzero_nemo.parallel import cpu_compat

pytestmark = pytest.mark.unit

needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")


PROBE = (
    "import sys, torch\n"
    "torch.cuda.is_available = lambda: True\n"
    "original = torch.cuda.current_device\n"
    "from vzero_nemo.parallel import cpu_compat\n"
    "print(cpu_compat.install(), cpu_compat.is_installed(),\n"
    "      cpu_compat.transformer_engine_available(), torch.cuda.current_device is original)\n"
)


def _probe(code: str, **env: str) -> subprocess.CompletedProcess:
    # A fresh interpreter, so no earlier install() in this process hides the decision.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, **env},
    )  # fmt: skip


def test_cuda_with_transformer_engine_is_left_unmodified(tmp_path):
    # A transformer_engine package on the path stands for the real one (never imported here).
    (tmp_path / "transformer_engine").mkdir()
    (tmp_path / "transformer_engine" / "__init__.py").write_text("raise ImportError('probe')\n")
    code = PROBE + "print('transformer_engine' in sys.modules, 'megatron.core' in sys.modules)\n"
    result = _probe(code, PYTHONPATH=f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    assert result.stdout.split() == ["False", "False", "True", "True", "False", "False"]
    assert "transformer-engine not found" not in result.stderr


def test_cuda_without_transformer_engine_gets_the_shim_and_says_so():
    # A GPU workstation with pip-installed torch: Bridge must import (the shim), the CUDA
    # calls stay untouched, the provider picks the local layer spec, and one line says why.
    code = PROBE + (
        "import vzero_nemo.models.provider as provider\n"
        "print('RESULT', provider._uses_transformer_engine(), cpu_compat.layer_spec_choice())\n"
    )
    result = _probe(code)
    assert result.stdout.split()[:4] == ["False", "False", "False", "True"]
    last = [line for line in result.stdout.splitlines() if line.startswith("RESULT")][0]
    assert last.split()[1] == "False" and "local layer spec" in last
    assert result.stderr.count("[vzero] transformer-engine not found") == 1


@needs_cpu_only
def test_install_without_cuda_redirects_and_is_idempotent():
    assert cpu_compat.install() is True
    assert cpu_compat.install() is True
    assert cpu_compat.is_installed()
    assert torch.cuda.current_device() == "cpu"
    torch.cuda.synchronize()  # would raise "no NVIDIA driver" without the redirect
    torch.cuda.current_stream().wait_stream(torch.cuda.Stream())


@needs_cpu_only
def test_bridge_qwen25_vl_provider_imports_and_megatron_core_sees_no_te():
    cpu_compat.install()
    import megatron.core.extensions.transformer_engine as mcore_te
    import megatron.core.utils as mcore_utils
    import transformer_engine
    from megatron.bridge.models.qwen_vl.qwen25_vl_provider import Qwen25VLModelProvider

    assert Qwen25VLModelProvider.__name__ == "Qwen25VLModelProvider"
    assert transformer_engine.__version__ == cpu_compat.TE_SHIM_VERSION == "2.12.0"
    assert cpu_compat.te_detected_modules() == []
    assert mcore_te.HAVE_TE is False
    assert mcore_utils.is_te_min_version("1.0") is False
    with pytest.raises(RuntimeError, match="local layer spec"):
        transformer_engine.pytorch.Linear(4, 4)
    with pytest.raises(ImportError):
        from transformer_engine.pytorch.fp8 import fp8_autocast  # noqa: F401


@needs_cpu_only
def test_cuda_redirect_scopes_device_cuda_to_cpu():
    cpu_compat.install()
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(2, device="cuda")
    with cpu_compat.cuda_redirect():
        made = [
            torch.zeros(2, device="cuda"),
            torch.tensor([1.0], device=torch.device("cuda", 0)),
            torch.ones(3).cuda(),
            torch.ones(3).to("cuda:0"),
            torch.empty(1, dtype=torch.int, device=0),
        ]
        type_name = torch.ones(1).type()
    assert [t.device.type for t in made] == ["cpu"] * 5
    assert made[0].tolist() == [0.0, 0.0] and made[2].tolist() == [1.0, 1.0, 1.0]
    assert type_name == "torch.cuda.FloatTensor"
    assert torch.ones(1).type() == "torch.FloatTensor"  # only inside the scope


@needs_cpu_only
def test_outside_cuda_redirect_leaves_the_mode_for_the_body_only():
    cpu_compat.install()

    @cpu_compat.outside_cuda_redirect
    def make_cuda_tensor(n: int) -> torch.Tensor:
        return torch.zeros(n, device="cuda")

    with cpu_compat.cuda_redirect():
        with pytest.raises((RuntimeError, AssertionError)):
            make_cuda_tensor(2)  # no redirect inside: CUDA is absent
        with cpu_compat.suspend_cuda_redirect():
            with pytest.raises((RuntimeError, AssertionError)):
                torch.zeros(1, device="cuda")
        assert torch.zeros(1, device="cuda").device.type == "cpu"  # back in the mode
    with cpu_compat.suspend_cuda_redirect():  # outside any redirect: a no-op
        assert torch.zeros(1).device.type == "cpu"


@needs_cpu_only
def test_causal_mask_builders_are_cpu_and_correct():
    cpu_compat.install()
    import megatron.core.fusions.fused_softmax as fused_softmax
    import megatron.core.transformer.utils as transformer_utils

    mask = fused_softmax.get_default_causal_mask(4)
    assert transformer_utils.get_default_causal_mask is fused_softmax.get_default_causal_mask
    assert mask.dtype == torch.bool and mask.device.type == "cpu"
    assert mask.int().tolist() == [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    window = fused_softmax.get_sliding_window_causal_mask(4, 4, (1, 0))
    # True = masked: each query sees itself and one token before it.
    assert (~window).int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
