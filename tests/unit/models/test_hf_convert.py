"""HF Qwen2.5-VL <-> Megatron through Megatron-Bridge, offline on a tiny random checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.batch import collate_prompts
from vzero_nemo.models.chat import render_chat
from vzero_nemo.models.tokenizer import tiny_tokenizer

pytestmark = pytest.mark.unit

CFG = ModelConfig(size="tiny", min_pixels=48 * 48, max_pixels=96 * 96)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, megatron_1proc):
    """A random tiny Qwen2_5_VLForConditionalGeneration saved to disk (no download). Weights
    get a larger scale than HF's init so attention and logits are far from uniform."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vzero_nemo.models.hf_convert import hf_config_for

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(hf_config_for(CFG)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("hf_tiny")
    model.save_pretrained(path)
    tiny_tokenizer().hf.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def imported(hf_dir):
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.provider import build_policy

    cfg = dataclasses.replace(CFG, hf_path=str(hf_dir))
    model = build_policy(cfg)
    hf_convert.import_hf_weights([model], cfg)
    return cfg, model


def _batch():
    rng = np.random.default_rng(0)
    prompts = []
    for i, hw in enumerate([(48, 48), (96, 64), (64, 80)]):
        text = "Who is the spy? Answer 1-4 or N/A." + " Player 2 said: red cube." * i
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
        ]
        image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        prompts.append(render_chat(messages, tiny_tokenizer(), image, CFG))
    return collate_prompts(prompts, tiny_tokenizer(), CFG)


def test_hf_megatron_hf_round_trip_is_identical(imported, hf_dir, tmp_path):
    from vzero_nemo.models import hf_convert

    cfg, model = imported
    out = hf_convert.save_hf_checkpoint([model], cfg, tmp_path / "export")
    original = load_file(hf_dir / "model.safetensors")
    exported = load_file(out / "model.safetensors")
    assert sorted(exported) == sorted(original) and len(original) == 81
    mismatched = [k for k in original if not torch.equal(original[k], exported[k])]
    assert mismatched == []
    streamed = dict(hf_convert.export_hf_weights([model], cfg))
    assert all(torch.equal(streamed[k], original[k]) for k in original)


def test_hf_and_megatron_logits_agree(imported, hf_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    _, model = imported
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(hf_dir, local_files_only=True).eval()
    batch = _batch()
    tok = tiny_tokenizer()
    model.eval()
    with torch.no_grad():
        ours = model(
            batch.input_ids,
            batch.position_ids,
            batch.causal_mask(),
            pixel_values=batch.pixel_values,
            image_grid_thw=batch.image_grid_thw,
        )
        theirs = hf(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            pixel_values=batch.pixel_values,
            image_grid_thw=batch.image_grid_thw,
            # without mm_token_type_ids transformers silently falls back to 1-D positions
            mm_token_type_ids=(batch.input_ids == tok.image_pad_id).int(),
        ).logits
    real = batch.attention_mask
    diff = (ours - theirs)[real].abs().max().item()
    scale = theirs[real].abs().max().item()
    print(f"HF vs Megatron logits: max |diff| = {diff:.3e} (max |logit| = {scale:.2f})")
    assert scale > 2.0  # non-trivial logits
    assert diff < 1e-4
    deltas = hf.model.rope_deltas.reshape(-1)
    assert torch.equal(batch.next_position, real.sum(-1) + deltas)


def test_exported_tiny_loads_in_transformers(megatron_1proc, tmp_path):
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.provider import build_policy

    model = build_policy(CFG)
    out = hf_convert.save_hf_checkpoint([model], CFG, tmp_path / "tiny_hf")
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, local_files_only=True)
    ours = model.language_model.embedding.word_embeddings.weight
    assert torch.equal(hf.model.language_model.embed_tokens.weight, ours)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tok.convert_tokens_to_ids("<|image_pad|>") == tiny_tokenizer().image_pad_id


def test_size_mismatch_is_rejected(hf_dir):
    from vzero_nemo.models import hf_convert

    with pytest.raises(ValueError, match=r"text.hidden_size: checkpoint 128 != 3584"):
        hf_convert.auto_bridge(ModelConfig(size="7b", hf_path=str(hf_dir)))
    with pytest.raises(ValueError, match="no config.json"):
        hf_convert.auto_bridge(dataclasses.replace(CFG, hf_path=str(hf_dir / "nope")))


def test_auto_size_takes_the_checkpoint_config(imported, hf_dir):
    """`model.size=auto` builds the same model from the checkpoint's config.json as the named
    size, skips the random init and imports the same weights."""
    from vzero_nemo.models import hf_convert
    from vzero_nemo.models.provider import build_policy, provider_for

    cfg, model = imported
    auto = dataclasses.replace(cfg, size="auto")
    named, read = provider_for(cfg), provider_for(auto)
    fields = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads")
    fields += ("num_query_groups", "kv_channels", "vocab_size", "mrope_section", "rotary_base")
    fields += ("image_token_id", "share_embeddings_and_output_weights", "layernorm_epsilon")
    assert {f: getattr(read, f) for f in fields} == {f: getattr(named, f) for f in fields}
    assert read.vision_config.to_dict() == named.vision_config.to_dict()
    auto_model = build_policy(auto, initialize=False)
    hf_convert.import_hf_weights([auto_model], auto)
    ours = dict(model.named_parameters())
    for name, param in auto_model.named_parameters():
        assert torch.equal(param, ours[name]), name


def test_bf16_policy_holds_every_parameter_in_bf16(megatron_1proc):
    from vzero_nemo.models.provider import build_policy

    model = build_policy(dataclasses.replace(CFG, params_dtype="bf16"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
