"""The token sampler: greedy, inverse-CDF sampling frequencies, top-p nucleus, seeding."""

import pytest
import torch

from vzero_nemo.generation.sampling import SamplingParams, draw_uniforms, sample_tokens

pytestmark = pytest.mark.unit


def test_params_reject_bad_values():
    with pytest.raises(ValueError, match="temperature=-1"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p=0"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="top_p=1.5"):
        SamplingParams(top_p=1.5)
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        SamplingParams(max_new_tokens=0)
    assert SamplingParams(stop_token_ids=[3, 4]).stop_token_ids == (3, 4)


def test_greedy_is_argmax():
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(0))
    tokens = sample_tokens(logits, SamplingParams(temperature=0), None)
    assert torch.equal(tokens, logits.argmax(-1))


def _frequencies(logits_V, params, num_samples=40_000, seed=0):
    uniforms = draw_uniforms(num_samples, torch.Generator().manual_seed(seed))
    tokens = sample_tokens(logits_V.expand(num_samples, -1), params, uniforms)
    return torch.bincount(tokens, minlength=logits_V.numel()).double() / num_samples


def test_sampling_frequencies_follow_tempered_softmax():
    logits_V = torch.tensor([2.0, 1.0, 0.5, -1.0, float("-inf")])
    for temperature in (1.0, 0.5, 2.0):
        freq = _frequencies(logits_V, SamplingParams(temperature=temperature))
        expected = torch.softmax(logits_V.double() / temperature, -1)
        assert freq[-1] == 0.0  # zero probability is never sampled
        assert (freq - expected).abs().max() < 0.01, (temperature, freq, expected)


def test_extreme_uniforms_pick_first_and_last_supported_tokens():
    probs = torch.tensor([[0.0, 0.6, 0.4, 0.0]])
    logits = probs.log().expand(2, -1)
    tokens = sample_tokens(logits, SamplingParams(temperature=1.0), torch.tensor([0.0, 1 - 1e-12]))
    assert tokens.tolist() == [1, 2]


def test_top_p_keeps_the_smallest_nucleus():
    logits_V = torch.tensor([0.15, 0.5, 0.05, 0.3]).log()
    freq = _frequencies(logits_V, SamplingParams(temperature=1.0, top_p=0.7))
    # Nucleus: 0.5 (token 1) then 0.3 (token 3) reaches 0.7; tokens 0 and 2 are cut.
    assert freq[0] == 0.0 and freq[2] == 0.0
    assert abs(freq[1] - 0.5 / 0.8) < 0.01 and abs(freq[3] - 0.3 / 0.8) < 0.01
    only_top = _frequencies(logits_V, SamplingParams(temperature=1.0, top_p=0.5))
    assert only_top[1] == 1.0  # mass 0.5 already reaches top_p = 0.5


def test_seeded_draws_and_row_independence():
    logits = torch.randn(6, 100, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, top_p=0.9)
    first = sample_tokens(logits, params, draw_uniforms(6, torch.Generator().manual_seed(7)))
    again = sample_tokens(logits, params, draw_uniforms(6, torch.Generator().manual_seed(7)))
    other = sample_tokens(logits, params, draw_uniforms(6, torch.Generator().manual_seed(8)))
    assert torch.equal(first, again) and not torch.equal(first, other)
    # A row's sample depends only on its own logits and uniform, not on the other rows.
    uniforms = draw_uniforms(6, torch.Generator().manual_seed(7))
    alone = sample_tokens(logits[3:4], params, uniforms[3:4])
    assert alone.item() == first[3].item()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_banned_tokens_are_never_picked(temperature):
    logits = torch.tensor([[0.0, 9.0, 1.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
    params = SamplingParams(temperature=temperature, banned_token_ids=(1, 3))
    picks = {
        int(t)
        for u in torch.linspace(0.0, 0.999, 50)
        for t in sample_tokens(logits, params, torch.full((2,), float(u), dtype=torch.float64))
    }
    assert picks <= {0, 2} and (temperature == 0.0 or picks == {0, 2})


def _reference_sampler(logits_BV, params, uniform_B):
    """The sampler as first written (float32 ban, then float64; min with the last column
    whose CDF is below the total on every row): the faster one must pick the same tokens."""
    if params.banned_token_ids:
        logits_BV = logits_BV.index_fill(-1, torch.tensor(params.banned_token_ids), -torch.inf)
    probs_BV = torch.softmax(logits_BV.double() / params.temperature, dim=-1)
    order_BV = None
    if params.top_p < 1.0:
        probs_BV, order_BV = probs_BV.sort(dim=-1, descending=True, stable=True)
        probs_BV = probs_BV.masked_fill(probs_BV.cumsum(-1) - probs_BV >= params.top_p, 0.0)
    cdf_BV = probs_BV.cumsum(dim=-1)
    total_B1 = cdf_BV[:, -1:]
    pick_B = torch.searchsorted(cdf_BV, uniform_B[:, None] * total_B1, right=True)
    pick_B = torch.minimum(pick_B, (cdf_BV < total_B1).sum(dim=-1, keepdim=True))
    if order_BV is not None:
        pick_B = order_BV.gather(-1, pick_B)
    return pick_B.squeeze(-1)


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_same_tokens_as_the_reference_sampler(top_p):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4096, 64, generator=gen) * 4
    uniforms = draw_uniforms(4096, gen)
    uniforms[:8] = 1.0 - 2.0**-53  # u * total may round to the total: the guard's case
    params = SamplingParams(temperature=0.7, top_p=top_p, banned_token_ids=(60, 61, 62, 63))
    got = sample_tokens(logits, params, uniforms)
    assert torch.equal(got, _reference_sampler(logits, params, uniforms))
    assert not bool(torch.isin(got, torch.tensor([60, 61, 62, 63])).any())
