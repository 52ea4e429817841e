"""Trained sequences and their micro-batches.

A `TrainSequence` is one completed request: the rendered prompt (tokens + image patches), the
sampled response ids (stop token included: we train on exactly the sampled ids) and the
behaviour log-probs the sampler returned. `make_micro_batches` pads sequences on the right into
fixed-shape micro-batches (every micro-batch of a step has the same (B, T), which pipeline
parallelism needs for its point-to-point shapes). A step's sequences go into as few
micro-batches as `micro_batch_size` allows, with their rows balanced, so filler rows (which
carry no loss but cost a full forward and backward) only fill the last micro-batch up to the
common row count: 16 sequences with micro_batch_size 32 are one micro-batch of 16 rows.
`make_length_grouped_micro_batches` instead sorts a step's sequences by length and pads each
group to its own width (no pipeline parallelism): pre-training mixes 55- and 140-token
examples, and one common width made a third of its tokens padding.

Alignment: `labels[b, t] = input_ids[b, t + 1]`; `loss_mask[b, t] = 1` where `labels[b, t]`
is a response token. Per-token tensors (`old_logp`, `ref_logp`) use the same alignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vzero_nemo.config import ModelConfig
from vzero_nemo.models.batch import causal_padding_mask, collate_prompts
from vzero_nemo.models.chat import PromptInputs
from vzero_nemo.models.tokenizer import VLTokenizer
from vzero_nemo.profiling import region


@dataclass(slots=True)
class TrainSequence:
    prompt: PromptInputs
    response_ids: list[int]
    old_logp: list[float]
    """Behaviour log-probs of `response_ids` (untempered, from the sampler)."""
    advantage: float = 0.0
    ref_logp: list[float] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.response_ids) != len(self.old_logp):
            raise ValueError(
                f"{len(self.response_ids)} response ids but {len(self.old_logp)} log-probs"
            )

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.response_ids)


@dataclass(slots=True)
class MicroBatch:
    """Right-padded (B, T) tensors of one micro-batch; see the module docstring."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    loss_mask: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    advantages: torch.Tensor
    pixel_values: torch.Tensor
    """Each distinct image of the micro-batch once (`PromptBatch`): the rows that share a
    prompt's pixel tensor (the votes of one game) share one pass of the vision tower."""
    image_grid_thw: torch.Tensor
    image_of_row: torch.Tensor
    """(B,) the image each row shows; stays on the CPU (the model reads it as a list)."""
    rows: list[int]
    """Index into the step's sequence list of each real row (filler rows are absent)."""

    def to(self, device: torch.device) -> MicroBatch:
        stay = ("rows", "image_of_row")
        moved = {
            name: getattr(self, name) if name in stay else getattr(self, name).to(device)
            for name in self.__slots__
        }
        return MicroBatch(**moved)


def make_micro_batches(
    sequences: Sequence[TrainSequence],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    micro_batch_size: int,
) -> list[MicroBatch]:
    """Pad `sequences` into micro-batches of at most `micro_batch_size` rows (balanced, see
    the module docstring) and one common width."""
    if not sequences:
        return []
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size={micro_batch_size} must be >= 1")
    width = max(s.length for s in sequences)
    if width > model_cfg.seq_length:
        raise ValueError(
            f"a sequence of {width} tokens exceeds model.seq_length={model_cfg.seq_length}; "
            "raise model.seq_length or shorten rollout.max_clue_tokens / max_vote_tokens"
        )
    num_micro = -(-len(sequences) // micro_batch_size)
    rows_per_micro = -(-len(sequences) // num_micro)
    batches = []
    with region("batching"):
        for start in range(0, len(sequences), rows_per_micro):
            rows = list(range(start, min(start + rows_per_micro, len(sequences))))
            seqs = [sequences[i] for i in rows]
            batches.append(_collate(seqs, rows, tokenizer, model_cfg, width, rows_per_micro))
    return batches


def make_length_grouped_micro_batches(
    sequences: Sequence[TrainSequence],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    micro_batch_size: int,
    groups: int,
) -> list[MicroBatch]:
    """`sequences` sorted by length into `groups` groups of (nearly) equal size, each made into
    micro-batches of its own width (`make_micro_batches`). The step's loss and gradient are
    the same as with one width (the per-token loss is normalised by the global token count);
    the shapes differ between groups, which only a schedule without pipeline parallelism
    accepts. Each row's index in `rows` still refers to `sequences`."""
    if groups < 1:
        raise ValueError(f"groups={groups} must be >= 1")
    order = sorted(range(len(sequences)), key=lambda i: sequences[i].length)
    size = -(-len(order) // groups) if order else 1
    batches = []
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        for mb in make_micro_batches(
            [sequences[i] for i in chunk], tokenizer, model_cfg, micro_batch_size
        ):
            mb.rows = [chunk[r] for r in mb.rows]
            batches.append(mb)
    return batches


def _collate(
    seqs: list[TrainSequence],
    rows: list[int],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    width: int,
    num_rows: int,
) -> MicroBatch:
    # Filler rows repeat the first sequence (so every row has an image) with no loss; the
    # first row is padded to `width` so every micro-batch of the step has the same shape.
    fill = seqs + [seqs[0]] * (num_rows - len(seqs))
    full = [s.prompt.extend(s.response_ids) for s in fill]
    full[0] = full[0].extend([tokenizer.pad_id] * (width - len(full[0])))
    batch = collate_prompts(full, tokenizer, model_cfg, padding_side="right")
    real = batch.attention_mask.clone()
    real[0, fill[0].length :] = False
    loss_mask = torch.zeros((num_rows, width), dtype=torch.float32)
    old_logp = torch.zeros((num_rows, width), dtype=torch.float32)
    ref_logp = torch.zeros((num_rows, width), dtype=torch.float32)
    advantages = torch.zeros(num_rows, dtype=torch.float32)
    for b, s in enumerate(seqs):
        p, r = len(s.prompt), len(s.response_ids)
        # Position p - 1 predicts the first response token.
        loss_mask[b, p - 1 : p + r - 1] = 1.0
        old_logp[b, p - 1 : p + r - 1] = torch.tensor(s.old_logp)
        if s.ref_logp is not None:
            ref_logp[b, p - 1 : p + r - 1] = torch.tensor(s.ref_logp)
        advantages[b] = s.advantage
    labels = torch.roll(batch.input_ids, shifts=-1, dims=1)
    labels[:, -1] = tokenizer.pad_id
    return MicroBatch(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=causal_padding_mask(real),
        labels=labels,
        loss_mask=loss_mask,
        old_logp=old_logp,
        ref_logp=ref_logp,
        advantages=advantages,
        pixel_values=batch.pixel_values,
        image_grid_thw=batch.image_grid_thw,
        image_of_row=batch.image_of_row,
        rows=rows,
    )
