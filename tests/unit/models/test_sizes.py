"""Dimensions from a checkpoint's own config.json (`model.size=auto`) and their checks.

`data/qwen25vl_{3b,7b,32b,72b}_config.json` hold the architecture fields of the published
`Qwen/Qwen2.5-VL-*-Instruct` config.json files (transformers 4.x layout, as published).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from vzero_nemo.config import ModelConfig, ParallelConfig, VZeroConfig
from vzero_nemo.models.sizes import (
    PUBLISHED,
    SIZES,
    check_parallel,
    dims_for,
    dims_from_hf_config,
    model_dims,
    num_parameters,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).with_name("data")


def _published(size: str) -> dict:
    return json.loads((DATA / f"qwen25vl_{size}_config.json").read_text())


def _write(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize("size", ["3b", "7b", "32b", "72b"])
def test_named_sizes_agree_with_their_published_configs(size):
    dims = dims_from_hf_config(_published(size))
    assert dims == dataclasses.replace(PUBLISHED[size], hf_model_id=None)
    if size in SIZES:
        assert PUBLISHED[size] is SIZES[size]


def test_transformers_5_layout_reads_the_same(tmp_path):
    from transformers import Qwen2_5_VLConfig

    for size in ("3b", "72b"):
        flat = _published(size)
        Qwen2_5_VLConfig(**flat).save_pretrained(tmp_path)  # text_config / rope_parameters
        nested = json.loads((tmp_path / "config.json").read_text())
        assert "text_config" in nested and "hidden_size" not in nested
        assert dims_from_hf_config(nested) == dims_from_hf_config(flat)


def test_auto_reads_3b_which_has_no_name(tmp_path):
    cfg = ModelConfig(size="auto", hf_path=str(_write(tmp_path, _published("3b"))))
    dims = model_dims(cfg)
    assert (dims.num_layers, dims.hidden_size, dims.ffn_hidden_size) == (36, 2048, 11008)
    assert (dims.num_attention_heads, dims.num_query_groups, dims.head_dim) == (16, 2, 128)
    assert dims.vocab_size == 151936 and dims.tie_word_embeddings
    assert dims.mrope_section == (16, 24, 24) and dims.vision.fullatt_block_indexes[-1] == 31
    # ~3.75B parameters, the published count of Qwen2.5-VL-3B
    assert 3.7e9 < num_parameters(dims, dims.vocab_size)["total"] < 3.8e9


def test_auto_reads_a_depth_reduced_config(tmp_path):
    config = _published("7b")
    config["num_hidden_layers"] = 2
    config["vision_config"].update(depth=2, fullatt_block_indexes=[1])
    dims = model_dims(ModelConfig(size="auto", hf_path=str(_write(tmp_path, config))))
    assert dims.num_layers == 2 and dims.vision.depth == 2
    assert dims.vision.fullatt_block_indexes == (1,)
    assert dims.hidden_size == 3584 and dims.vocab_size == 152064


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["rope_scaling"].update(mrope_section=[16, 24, 16]), r"sums to 56, not"),
        (lambda c: c.update(num_key_value_heads=5), r"not a multiple of num_key_value_heads=5"),
        (
            lambda c: (c.update(hidden_size=3583), c["vision_config"].update(out_hidden_size=3583)),
            r"not divisible by num_attention_heads",
        ),
        (lambda c: c["vision_config"].update(depth=16), r"fullatt_block_indexes=\[7, 15, 23, 31\]"),
        (lambda c: c["vision_config"].update(window_size=100), r"window_size=100 px"),
        (lambda c: c["vision_config"].update(out_hidden_size=2048), r"out_hidden_size=2048"),
        (lambda c: c.update(model_type="qwen2_vl"), r"model_type='qwen2_vl'"),
        (lambda c: c.pop("num_hidden_layers"), r"no 'num_hidden_layers'"),
        (lambda c: c.pop("rope_scaling"), r"three M-RoPE sections"),
    ],
)
def test_inconsistent_configs_are_rejected(tmp_path, edit, message):
    config = _published("7b")
    edit(config)
    cfg = ModelConfig(size="auto", hf_path=str(_write(tmp_path, config)))
    with pytest.raises(ValueError, match=message):
        model_dims(cfg)


def test_auto_needs_a_config(tmp_path):
    with pytest.raises(ValueError, match="set model.hf_path"):
        model_dims(ModelConfig(size="auto"))
    with pytest.raises(ValueError, match="does not exist"):
        model_dims(ModelConfig(size="auto", hf_path=str(tmp_path)))
    with pytest.raises(ValueError, match="use sizes.model_dims"):
        dims_for("auto")
    cfg = VZeroConfig()
    cfg.apply_overrides(["model.size=auto"])
    with pytest.raises(ValueError, match="model.size=auto reads the dimensions"):
        cfg.finalize(1)


def test_an_edited_config_is_read_again(tmp_path):
    cfg = ModelConfig(size="auto", hf_path=str(_write(tmp_path, _published("7b"))))
    assert model_dims(cfg).num_layers == 28
    config = _published("7b")
    config["num_hidden_layers"] = 4
    _write(tmp_path, config)
    path = tmp_path / "config.json"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert model_dims(cfg).num_layers == 4


@pytest.mark.parametrize(
    "size, tp, pp, message",
    [
        ("3b", 4, 1, r"2 key/value heads .* one of \[1, 2\]"),
        ("7b", 8, 1, r"28 attention heads, 4 key/value heads .* one of \[1, 2, 4\]"),
        ("72b", 8, 3, r"3 pipeline chunks do not divide the 80 language layers"),
    ],
)
def test_parallel_layout_must_fit_the_dimensions(tmp_path, size, tp, pp, message):
    cfg = ModelConfig(size="auto", hf_path=str(_write(tmp_path, _published(size))))
    par = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    with pytest.raises(ValueError, match="parallel.") as err:
        check_parallel(model_dims(cfg), par, cfg)
    assert err.match(message)


@pytest.mark.parametrize("size, tp, pp", [("7b", 2, 1), ("32b", 8, 2), ("72b", 8, 4)])
def test_recipe_layouts_fit(size, tp, pp):
    par = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    check_parallel(dims_for(size), par, ModelConfig(size=size))  # no error


def test_train_dry_run_resolves_auto_and_rejects_a_bad_layout(tmp_path, monkeypatch, capsys):
    from vzero_nemo.train import main

    config = _published("7b")
    config["num_hidden_layers"] = 2
    config["vision_config"].update(depth=2, fullatt_block_indexes=[1])
    argv = ["--recipe", "qwen25vl_7b_1n8g", "model.size=auto", f"model.hf_path={tmp_path}"]
    _write(tmp_path, config)
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model.size = 'auto'" in out and "parallel.tensor_model_parallel_size = 2" in out
    assert "model dims = 2 layers, hidden 3584, 28 heads / 4 KV heads" in out
    with pytest.raises(SystemExit) as stop:
        main([*argv, "parallel.tensor_model_parallel_size=8", "--dry-run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: parallel.tensor_model_parallel_size=8 does not divide")
    assert "one of [1, 2, 4]" in err
