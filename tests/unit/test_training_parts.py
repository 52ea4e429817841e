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
from vzero_nemo.training.batching import (
    TrainSequence,
    make_micro_batches,
    make_shared_prompt_micro_batches,
)
from vzero_nemo.training.checkpoint import (
    CheckpointMismatch,
    check_dcp_metadata,
    check_meta,
    one_intraop_thread,
    save_checkpoint,
)
from vzero_nemo.training.metrics_log import truncate_jsonl
from vzero_nemo.training.trainer import iteration_seed, split_minibatches

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


def test_checkpoint_io_runs_with_one_intraop_thread_and_restores_the_count(tmp_path, monkeypatch):
    # gloo worker threads first used with several OpenMP threads start a team of their own
    # that slows every later op; dist-checkpointing must run with one (checkpoint.py).
    from megatron.core import dist_checkpointing

    seen = []
    monkeypatch.setattr(
        dist_checkpointing, "save", lambda sd, path: seen.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        save_checkpoint(tmp_path, 3, {}, {"iteration": 3}, {"recipe": "t"}, keep_last=2)
        assert seen == [1]
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_intraop_thread():
            raise RuntimeError("a failed save")
        assert torch.get_num_threads() == 2
        assert (tmp_path / "latest").read_text().strip() == "iter_0000003"
    finally:
        torch.set_num_threads(before)


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


def test_shared_prompt_rows_pack_each_prompt_once_with_segment_masks():
    tok = load_tokenizer(ModelConfig())
    grid = torch.tensor([1, 2, 2])
    pad = tok.image_pad_id
    game = PromptInputs(torch.tensor([5, pad, 6, 7]), torch.zeros(4, 8), grid)
    other = PromptInputs(torch.tensor([5, pad, 9]), torch.ones(4, 8), grid)
    seqs = [
        TrainSequence(game, [8, 9], [-0.5, -0.6], advantage=1.0),
        TrainSequence(other, [10], [-0.7], advantage=3.0),
        TrainSequence(game, [11, 12, 13], [-0.1, -0.2, -0.3], advantage=-2.0),
    ]
    batches = make_shared_prompt_micro_batches(seqs, tok, ModelConfig(), micro_batch_size=4)
    assert len(batches) == 1 and batches[0].rows == [0, 2, 1]
    mb = batches[0]
    # Row 0: [5, pad, 6] once, then segments [7, 8, 9] and [7, 11, 12, 13].
    assert mb.input_ids[0].tolist() == [5, pad, 6, 7, 8, 9, 7, 11, 12, 13]
    assert mb.labels[0, 3:].tolist() == [8, 9, tok.pad_id, 11, 12, 13, tok.pad_id]
    assert mb.loss_mask[0].tolist() == [0, 0, 0, 1, 1, 0, 1, 1, 1, 0]
    assert mb.old_logp[0, 6:9].tolist() == pytest.approx([-0.1, -0.2, -0.3])
    assert mb.advantages[0].tolist() == [0, 0, 0, 1, 1, 0, -2, -2, -2, 0]
    # Both segments continue the prompt's positions; the second does not see the first.
    q = int(mb.position_ids[0, 0, 3])
    assert mb.position_ids[:, 0, 3:].tolist() == [[q, q + 1, q + 2, q, q + 1, q + 2, q + 3]] * 3
    masked = mb.attention_mask[0, 0]
    assert not masked[7, :3].any() and masked[7, 3:6].all() and not masked[7, 6:8].any()
    # Row 1: the other prompt, padded to the common width; each row shows its own image.
    assert mb.input_ids[1, :4].tolist() == [5, pad, 9, 10] and mb.loss_mask[1, 4:].sum() == 0
    assert mb.image_of_row.tolist() == [0, 1] and mb.pixel_values.shape == (8, 8)


def test_minibatch_runs_deal_consecutive_samples_round_robin():
    votes = [f"g{g}v{v}" for g in range(4) for v in range(4)]  # game-major, as rollouts
    assert split_minibatches(votes, 2, 1) == [votes[0::2], votes[1::2]]
    pairs = split_minibatches(votes, 2, 2)  # each mini-batch: 2 votes of every game
    assert pairs[0] == ["g0v0", "g0v1", "g1v0", "g1v1", "g2v0", "g2v1", "g3v0", "g3v1"]
    assert split_minibatches(votes, 2, 8) == [votes[:8], votes[8:]]  # whole games
    assert [len(m) for m in split_minibatches(votes[:10], 3, 2)] == [4, 4, 2]


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
