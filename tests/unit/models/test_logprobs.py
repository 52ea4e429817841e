"""Vocab-parallel log-probs and entropy at TP = 1 against dense references (value and grad)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.unit


@pytest.fixture
def logits_and_targets(megatron_1proc):
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(2, 5, 37, generator=gen, dtype=torch.float64)).float()
    targets = torch.randint(0, 37, (2, 5), generator=gen)
    return logits, targets


def test_token_logprobs_value_grad_and_input_untouched(logits_and_targets):
    from vzero_nemo.models.logprobs import token_logprobs

    logits, targets = logits_and_targets
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    got = token_logprobs(a, targets)
    want = torch.log_softmax(b, -1).gather(-1, targets[..., None])[..., 0]
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(a.detach(), logits)  # megatron's kernel works in place on a copy
    weights = torch.linspace(-1, 1, 10).reshape(2, 5)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_token_entropy_value_and_grad(logits_and_targets):
    from vzero_nemo.models.logprobs import token_entropy

    logits, _ = logits_and_targets
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    got = token_entropy(a)
    p = torch.softmax(b, -1)
    want = -(p * torch.log_softmax(b, -1)).sum(-1)
    assert torch.allclose(got, want, atol=1e-5)
    got.sum().backward()
    want.sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-5)
    uniform = token_entropy(torch.zeros(1, 64))
    assert abs(uniform.item() - torch.log(torch.tensor(64.0)).item()) < 1e-6


def test_shape_errors(logits_and_targets):
    from vzero_nemo.models.logprobs import token_logprobs

    logits, targets = logits_and_targets
    with pytest.raises(ValueError, match="target shape"):
        token_logprobs(logits, targets[:, :3])
