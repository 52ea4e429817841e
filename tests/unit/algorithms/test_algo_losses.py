"""KL estimators, clipped policy loss, and exact global-token aggregation over shards."""

import dataclasses
import math

import pytest
import torch

from vzero_nemo.algorithms.losses import (
    count_sequences,
    count_tokens,
    kl_estimate,
    per_token_loss,
    policy_loss,
)
from vzero_nemo.config import GRPOConfig

pytestmark = pytest.mark.unit


def grpo(**kw):
    return dataclasses.replace(GRPOConfig(), **kw)


def test_kl_estimators_hand_worked():
    # logp = -1, ref = -2: d = ref - logp = -1.
    # k1 = -d = 1; k2 = d^2 / 2 = 0.5; k3 = e^d - d - 1 = e^-1 = 0.367879...
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(1.0)
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(math.exp(-1))
    with pytest.raises(ValueError, match="k4"):
        kl_estimate(logp, ref, "k4")


def test_kl_estimators_elementwise_formulas_and_expectations():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(200, generator=g, dtype=torch.float64)
    ref = torch.randn(200, generator=g, dtype=torch.float64)
    for i in range(200):
        d = ref[i].item() - logp[i].item()
        assert kl_estimate(logp, ref, "k1")[i].item() == pytest.approx(-d)
        assert kl_estimate(logp, ref, "k2")[i].item() == pytest.approx(d * d / 2)
        assert kl_estimate(logp, ref, "k3")[i].item() == pytest.approx(math.exp(d) - d - 1)
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    # Exact expectation over x ~ pi of k1 and k3 is KL(pi || ref) (both unbiased).
    pi = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(6, generator=g, dtype=torch.float64), 0)
    kl = (pi * (pi.log() - q.log())).sum()
    for kind in ("k1", "k3"):
        assert (pi * kl_estimate(pi.log(), q.log(), kind)).sum().item() == pytest.approx(kl.item())


def test_per_token_loss_matches_scalar_reference():
    g = torch.Generator().manual_seed(1)
    logp = torch.randn(5, 7, generator=g, dtype=torch.float64) * 0.3 - 1
    old = logp + torch.randn(5, 7, generator=g, dtype=torch.float64) * 0.4
    ref = logp + torch.randn(5, 7, generator=g, dtype=torch.float64) * 0.2
    adv = torch.tensor([1.5, -0.7, 0.0, 2.0, -1.2], dtype=torch.float64)
    cfg = grpo(clip_eps_low=0.2, clip_eps_high=0.28, kl_coef=0.04)
    loss, _ = per_token_loss(logp, adv, cfg, old_logp_BT=old, ref_logp_BT=ref)
    for b in range(5):
        for t in range(7):
            rho = math.exp(logp[b, t].item() - old[b, t].item())
            a = adv[b].item()
            clipped = min(max(rho, 0.8), 1.28)
            d = ref[b, t].item() - logp[b, t].item()
            expected = -min(rho * a, clipped * a) + 0.04 * (math.exp(d) - d - 1)
            assert loss[b, t].item() == pytest.approx(expected, rel=1e-12)


def test_on_policy_gradient_is_the_advantage_weighted_score():
    # old = logp.detach(): rho = 1, no clipping; d loss / d logp = -A + tau * dKL.
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -2.0]])
    loss, units, _ = policy_loss(
        logp, torch.tensor([3.0]), torch.ones(1, 2), grpo(kl_coef=0.04), ref_logp_BT=ref
    )
    loss.backward()
    assert units.item() == 2 and loss.item() == pytest.approx(-6.0)  # unnormalised sum
    assert logp.grad[0].tolist() == pytest.approx([-3.0, -3.0])  # KL gradient 0 at logp = ref


def _batch(seed=0, B=8, T=6, V=11):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 4, generator=g, dtype=torch.float64)
    w = torch.randn(4, V, generator=g, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.tensor([1, 6, 3, 2, 5, 4, 6, 2])  # ragged responses
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64)
    with torch.no_grad():
        logp0 = torch.log_softmax(x @ w, -1).gather(-1, tokens[..., None])[..., 0]
    old = logp0 + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    ref = logp0 + 0.2 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    return x, w, tokens, mask, old, ref, adv


def _sharded_grad(cfg, num_shards, naive_mean=False):
    x, w, tokens, mask, old, ref, adv = _batch()
    splits = {1: [8], 2: [3, 5], 4: [1, 3, 2, 2]}[num_shards]  # uneven shards
    global_tokens, global_seqs = count_tokens(mask), count_sequences(mask)
    total, start = 0.0, 0
    for size in splits:
        s = slice(start, start + size)
        start += size
        logp = torch.log_softmax(x[s] @ w, -1).gather(-1, tokens[s][..., None])[..., 0]
        loss, units, metrics = policy_loss(
            logp,
            adv[s],
            mask[s],
            cfg,
            old_logp_BT=old[s],
            ref_logp_BT=ref[s],
            global_num_tokens=None if naive_mean else global_tokens,
            global_num_sequences=None if naive_mean else global_seqs,
        )
        if naive_mean:
            loss = loss / units / num_shards  # a per-shard mean: NOT exact
        loss.backward()
        total += loss.item()
    return total, w.grad.clone()


@pytest.mark.parametrize("aggregation", ["global_token", "sequence_mean"])
def test_loss_and_gradient_identical_for_1_2_4_shards(aggregation):
    cfg = grpo(loss_aggregation=aggregation, clip_eps_high=0.28)
    loss1, grad1 = _sharded_grad(cfg, 1)
    for shards in (2, 4):
        loss_n, grad_n = _sharded_grad(cfg, shards)
        assert loss_n == pytest.approx(loss1, abs=1e-9)
        assert torch.allclose(grad_n, grad1, atol=1e-6, rtol=0)
    # The test can fail: averaging per-shard means changes the result with ragged shards.
    _, grad_naive = _sharded_grad(cfg, 4, naive_mean=True)
    assert not torch.allclose(grad_naive, grad1, atol=1e-6, rtol=0)


def test_global_token_normalisation_by_hand():
    # Two sequences, 3 and 1 response tokens, on-policy, no KL: l = -A per token.
    # global_token: (3 * -(1) + 1 * -(-2)) / 4 = -0.25; sequence_mean: (-1 + 2) / 2 = 0.5.
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    adv = torch.tensor([1.0, -2.0])
    loss, units, _ = policy_loss(logp, adv, mask, grpo(kl_coef=0.0), global_num_tokens=4)
    assert loss.item() == pytest.approx(-0.25) and units.item() == 4
    cfg = grpo(kl_coef=0.0, loss_aggregation="sequence_mean")
    loss, units, _ = policy_loss(logp, adv, mask, cfg, global_num_sequences=2)
    assert loss.item() == pytest.approx(0.5) and units.item() == 2


def test_metrics_are_sum_count_pairs_and_clip_fraction():
    # rho = e^{0.5} = 1.65 > 1.2 with A > 0: clipped; rho = e^{-0.5} = 0.61 < 0.8 with A > 0:
    # not clipped (min picks the unclipped, smaller term); the padded token is ignored.
    logp = torch.tensor([[0.5, -0.5, 9.0]])
    old = torch.zeros(1, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    _, _, m = policy_loss(logp, torch.tensor([1.0]), mask, grpo(kl_coef=0.0), old_logp_BT=old)
    assert m["clip_fraction"].tolist() == [1.0, 2.0]
    assert m["ratio"][0].item() == pytest.approx(math.exp(0.5) + math.exp(-0.5))
    assert m["pg_loss"][0].item() == pytest.approx(-1.2 - math.exp(-0.5))
    assert m["kl"].tolist() == [0.0, 2.0]


def test_loss_input_errors():
    ones = torch.ones(2, 3)
    with pytest.raises(ValueError, match="needs ref_logp_BT"):
        policy_loss(ones, torch.ones(2), ones, grpo(kl_coef=0.1))
    with pytest.raises(ValueError, match="mask_BT"):
        policy_loss(ones, torch.ones(2), torch.ones(2, 4), grpo(kl_coef=0.0))
    with pytest.raises(ValueError, match="global count 0"):
        policy_loss(ones, torch.ones(2), ones, grpo(kl_coef=0.0), global_num_tokens=0)
    with pytest.raises(ValueError, match="loss_aggregation"):
        policy_loss(ones, torch.ones(2), ones, grpo(kl_coef=0.0, loss_aggregation="x"))
