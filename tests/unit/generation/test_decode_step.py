"""The lean decode step (`generation.decode_step`) against megatron-core's layer forward.

The distributed tier checks the same at TP=2 and PP=2 (`test_generation_parallel.py`).
"""

import pytest
import torch

from vzero_nemo.generation import SamplingParams, generate
from vzero_nemo.generation.decode_step import LeanDecoder, lean_decode_unsupported
from vzero_nemo.generation.generate import unwrap_model
from vzero_nemo.models.batch import collate_prompts

pytestmark = pytest.mark.unit


def _both(policy, prompts, params, seed=3):
    model, tokenizer, model_cfg = policy
    batch = collate_prompts(prompts, tokenizer, model_cfg)
    return [
        generate(model, batch, params, torch.Generator().manual_seed(seed), lean_decode=lean)
        for lean in (True, False)
    ]


@pytest.mark.parametrize("repeat", [1, 3])
def test_lean_decode_samples_exactly_what_the_layer_forward_samples(policy, prompts, repeat):
    # repeat=3: rows repeating a prompt decode over its shared keys (the observer's votes).
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12)
    lean, layers = _both(policy, [p for p in prompts for _ in range(repeat)], params)
    assert lean.token_ids == layers.token_ids
    assert lean.logprobs == layers.logprobs  # bit-identical, not merely close
    assert lean.num_tokens == len(prompts) * repeat * 12


def test_lean_decode_hidden_states_equal_the_layer_forward_bitwise(policy, prompts):
    """One decode step after a prefill, both ways, from the same cache state."""
    from vzero_nemo.generation.generate import _prefill, _StageRunner, inference_scope
    from vzero_nemo.generation.kv_cache import KVCache
    from vzero_nemo.generation.prefill import plan_prefill

    model, tokenizer, model_cfg = policy
    vlm = unwrap_model(model)
    batch = collate_prompts(prompts, tokenizer, model_cfg)
    tokens_B1 = torch.tensor([[5], [17], [3], [250]])
    positions_31 = batch.next_position.view(1, -1, 1).expand(3, -1, 1)
    logits = {}
    for lean in (True, False):
        runner = _StageRunner(vlm, lean_decode=lean)
        assert (runner.lean is not None) == lean
        plan = plan_prefill(batch, image_token_id=vlm.config.image_token_id)
        cache = KVCache(plan, max_len=batch.input_ids.shape[1] + 2, device=runner.device)
        with inference_scope(vlm, cache):
            _prefill(vlm, runner, batch, plan, cache)
            cache.begin_decode()
            logits[lean] = runner.decode(input_ids=tokens_B1, position_ids=positions_31)
            cache.end_forward()
    assert logits[True].shape == (4, vlm.language_model.output_layer.weight.shape[0])
    assert torch.equal(logits[True], logits[False])


def test_the_tiny_model_is_supported_and_other_architectures_are_named(policy, monkeypatch):
    model, _, _ = policy
    lm = unwrap_model(model).language_model
    assert lean_decode_unsupported(lm) is None
    monkeypatch.setattr(lm.config, "qk_layernorm", True)
    assert lean_decode_unsupported(lm) == "qk_layernorm=True"
    with pytest.raises(ValueError, match="lean decode does not support this model: qk_layernorm"):
        LeanDecoder(lm)
    monkeypatch.undo()
    norm = lm.decoder.layers[1].pre_mlp_layernorm
    monkeypatch.setattr(lm.decoder.layers[1], "pre_mlp_layernorm", torch.nn.LayerNorm(4))
    assert "not torch RMSNorm" in lean_decode_unsupported(lm)
    monkeypatch.setattr(lm.decoder.layers[1], "pre_mlp_layernorm", norm)
    assert lean_decode_unsupported(lm) is None


def test_an_unsupported_model_falls_back_to_the_layer_forward(policy, prompts, monkeypatch):
    from vzero_nemo.generation.generate import _StageRunner

    model, _, _ = policy
    params = SamplingParams(temperature=0.8, max_new_tokens=5)
    reference, _ = _both(policy, prompts, params)
    lm = unwrap_model(model).language_model
    # A setting the lean step does not implement, that leaves this model's arithmetic as it
    # is: the runner must not build a LeanDecoder, and generation still works.
    monkeypatch.setattr(lm.config, "use_mup", True)
    monkeypatch.setattr(lm, "_scale_logits", lambda logits: logits)
    assert _StageRunner(unwrap_model(model)).lean is None
    fallback, _ = _both(policy, prompts, params)
    assert fallback.token_ids == reference.token_ids
    assert fallback.logprobs == reference.logprobs


def test_rollout_lean_decode_setting_reaches_generation(policy, prompts, monkeypatch):
    """`rollout.lean_decode` is passed down by the rollout's `generate_texts`: the lean step
    runs only when it is true, and both settings sample the same tokens and log-probs."""
    from vzero_nemo.config import RolloutConfig
    from vzero_nemo.training.rollout import generate_texts

    calls = []
    lean_call = LeanDecoder.__call__
    monkeypatch.setattr(
        LeanDecoder, "__call__", lambda self, *a: calls.append(1) or lean_call(self, *a)
    )
    model, tokenizer, model_cfg = policy
    assert RolloutConfig().lean_decode is True
    params = SamplingParams(temperature=0.8, max_new_tokens=6)
    got, steps = {}, {}
    for lean in (True, False):
        calls.clear()
        got[lean] = generate_texts(
            model,
            prompts,
            tokenizer,
            params,
            torch.Generator().manual_seed(5),
            max_batch=3,
            model_cfg=model_cfg,
            lean_decode=lean,
        )
        steps[lean] = len(calls)
    assert steps == {True: 2 * 5, False: 0}  # 2 chunks (4 prompts, 3 per call) x 5 steps
    assert got[True] == got[False]
    assert len(got[True][0]) == len(prompts)


def test_lean_decode_is_bit_identical_in_bf16(policy, prompts):
    """The cluster recipes' parameter dtype: RoPE's cos/sin are cast to bf16 as megatron-core
    casts them, so bf16 sampling is identical too."""
    from vzero_nemo.config import ModelConfig
    from vzero_nemo.models.provider import build_policy

    _, tokenizer, _ = policy
    bf16_cfg = ModelConfig(size="tiny", params_dtype="bf16")
    model = build_policy(bf16_cfg, tokenizer=tokenizer)
    assert next(model.parameters()).dtype == torch.bfloat16
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    lean, layers = _both(
        (model, tokenizer, bf16_cfg), [p for p in prompts for _ in range(2)], params
    )
    assert lean.token_ids == layers.token_ids
    assert lean.logprobs == layers.logprobs
