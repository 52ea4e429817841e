"""Trainer parts that need no model: checkpoint safety and compatibility, metrics JSONL
truncation on resume, micro-batch alignment."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.models.tokenizer import load_tokenizer
from vzero_nemo.training.batching import TrainSequence, make_micro_batches
from vzero_nemo.training.checkpoint import CheckpointMismatch, check_dcp_metadata, check_meta
from vzero_nemo.training.metrics_log import truncate_jsonl
from vzero_nemo.training.trainer import iteration_seed

pytestmark = pytest.mark.unit


def test_metadata_with_foreign_globals_is_refused(tmp_path):
    (tmp_path / ".metadata").write_bytes(pickle.dumps({"x": os.system}))
    with pytest.raises(CheckpointMismatch, match=r"references posix.system; refused"):
        check_dcp_metadata(tmp_path)


def test_checkpoint_from_another_recipe_is_refused(tmp_path):
    meta = {"recipe": "tiny_cpu", "tensor_model_parallel_size": 1, "model_size": "tiny"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    other = dict(meta, recipe="qwen25vl_7b_1n8g")
    with pytest.raises(CheckpointMismatch, match="recipe: checkpoint 'tiny_cpu' vs this run"):
        check_meta(tmp_path, other, reshardable=("tensor_model_parallel_size",))
    resharded = check_meta(
        tmp_path, dict(meta, tensor_model_parallel_size=2), ("tensor_model_parallel_size",)
    )
    assert resharded == ["tensor_model_parallel_size"]


def test_truncate_jsonl_keeps_checkpointed_iterations(tmp_path):
    path = tmp_path / "m.jsonl"
    lines = [json.dumps({"iteration": i}) for i in range(1, 6)] + ['{"iteration": 6, "torn']
    path.write_text("\n".join(lines))
    assert truncate_jsonl(path, 3) == 3
    assert [json.loads(x)["iteration"] for x in path.read_text().splitlines()] == [1, 2, 3]


def test_iteration_seeds_differ_by_iteration_and_rank():
    seeds = {iteration_seed(1234, it, r) for it in range(50) for r in range(8)}
    assert len(seeds) == 400


def test_micro_batches_align_labels_and_response_mask():
    tok = load_tokenizer(ModelConfig())
    grid = torch.tensor([1, 2, 2])
    pixels = torch.zeros(4, 8)

    def seq(prompt_ids, resp):
        prompt = PromptInputs(torch.tensor(prompt_ids), pixels, grid)
        return TrainSequence(prompt, resp, [-0.5] * len(resp), advantage=1.5)

    pad = tok.image_pad_id
    seqs = [seq([5, pad, 6, 7], [8, 9]), seq([5, pad, 6], [10, 11, 12]), seq([5, pad], [13])]
    batches = make_micro_batches(seqs, tok, ModelConfig(), micro_batch_size=2)
    assert [b.rows for b in batches] == [[0, 1], [2]]
    first = batches[0]
    assert first.input_ids.shape == (2, 6) and batches[1].input_ids.shape == (2, 6)
    # Row 0: prompt of 4, response [8, 9]: positions 3 and 4 predict them.
    assert first.loss_mask[0].tolist() == [0, 0, 0, 1, 1, 0]
    assert first.labels[0, 3:5].tolist() == [8, 9]
    assert first.loss_mask[1].tolist() == [0, 0, 1, 1, 1, 0]
    assert first.labels[1, 2:5].tolist() == [10, 11, 12]
    assert first.old_logp[1, 2:5].tolist() == [-0.5] * 3
    # The filler row of the last micro-batch carries no loss.
    assert batches[1].loss_mask[1].sum() == 0 and batches[1].advantages.tolist() == [1.5, 0.0]


def test_trainer_state_round_trip_restores_every_field():
    import dataclasses
    import json

    from vzero_nemo.algorithms.advantages import RoleBaselines
    from vzero_nemo.algorithms.spo import StageController
    from vzero_nemo.config import SPOConfig
    from vzero_nemo.training.trainer import TrainerState

    spo = SPOConfig()
    state = TrainerState(
        iteration=7, baselines=RoleBaselines(alpha=0.9).update(0.3, -0.1),
        controller=StageController(spo), run_id="abc", nonfinite_in_a_row=2, skipped_steps=5,
    )  # fmt: skip
    state.controller.update(0.5, 0.1)
    fresh = TrainerState(controller=StageController(spo))
    # Every field differs from a fresh state, so a field left out of the round trip shows.
    saved = json.loads(json.dumps(state.state_dict()))
    assert all(saved[f.name] != fresh.state_dict()[f.name] for f in dataclasses.fields(state))
    fresh.load_state_dict(saved)
    assert fresh.state_dict() == state.state_dict()
    with pytest.raises(ValueError, match="trainer state keys"):
        fresh.load_state_dict({k: v for k, v in saved.items() if k != "skipped_steps"})


def test_micro_batches_are_balanced_with_filler_only_to_the_common_row_count():
    tok = load_tokenizer(ModelConfig())
    prompt = PromptInputs(
        torch.tensor([5, tok.image_pad_id, 6]), torch.zeros(4, 8), torch.tensor([1, 2, 2])
    )
    seqs = [TrainSequence(prompt, [7] * (1 + i % 3), [-1.0] * (1 + i % 3)) for i in range(16)]

    def shape(n: int, micro: int) -> list[tuple[int, int]]:
        batches = make_micro_batches(seqs[:n], tok, ModelConfig(), micro_batch_size=micro)
        assert sorted(r for b in batches for r in b.rows) == list(range(n))
        assert sum(int(b.loss_mask.sum()) for b in batches) == sum(
            len(s.response_ids) for s in seqs[:n]
        )
        return [(len(b.rows), b.input_ids.shape[0]) for b in batches]

    assert shape(16, 32) == [(16, 16)]  # one micro-batch, no filler rows
    assert shape(5, 4) == [(3, 3), (2, 3)]  # 2 micro-batches of 3 rows, one filler row
    assert shape(16, 4) == [(4, 4)] * 4
    with pytest.raises(ValueError, match="micro_batch_size"):
        make_micro_batches(seqs, tok, ModelConfig(), micro_batch_size=0)
