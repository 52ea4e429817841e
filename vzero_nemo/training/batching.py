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
`make_shared_prompt_micro_batches` (`train.share_prompts`) packs the sequences that share a
prompt into one row that holds the prompt once: the observer's 8 votes of a tiny game are
93 prompt + up to 72 response tokens each, 16 votes of two games 2 x 676 tokens instead of
16 x 165, with the same log-probs and gradient.

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
    """Right-padded (B, T) tensors of one micro-batch; see the module docstring. A row is one
    sequence, or (shared prompts) one prompt and its sequences' responses; `advantages` is
    then (B, T), one value per token."""

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
    """Index into the step's sequence list of each sequence the micro-batch holds, in row
    order (filler rows are absent)."""

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


def make_shared_prompt_micro_batches(
    sequences: Sequence[TrainSequence],
    tokenizer: VLTokenizer,
    model_cfg: ModelConfig,
    micro_batch_size: int,
) -> list[MicroBatch]:
    """Micro-batches in which the sequences that share a prompt (the same `PromptInputs`
    object: the observer's `num_votes` samples of one game) compute it once.

    One row per prompt group: the prompt without its last token once, then one segment per
    sequence, `[last prompt token, response...]`, at the positions the sequence has on its
    own. The attention mask lets a segment see the shared prompt and itself (causally), never
    another segment, so every response token gets exactly the logits of the padded
    one-row-per-sequence layout (`make_micro_batches`; a unit test compares them) while the
    prompt and its image run through the layers once per group instead of once per
    sequence. Advantages are per token ((B, T)). A micro-batch holds whole groups, at most
    `micro_batch_size` sequences (a larger group is split); every micro-batch of the call
    has the same (B, T), filler rows carrying no loss, as pipeline parallelism needs."""
    if not sequences:
        return []
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size={micro_batch_size} must be >= 1")
    groups: dict[int, list[int]] = {}
    for index, seq in enumerate(sequences):
        groups.setdefault(id(seq.prompt), []).append(index)
    chunks = [
        members[start : start + micro_batch_size]
        for members in groups.values()
        for start in range(0, len(members), micro_batch_size)
    ]
    rows = [
        _SharedRow.build([sequences[i] for i in chunk], chunk, tokenizer, model_cfg)
        for chunk in chunks
    ]
    longest = max(s.length for s in sequences)
    if longest > model_cfg.seq_length:
        raise ValueError(
            f"a sequence of {longest} tokens exceeds model.seq_length={model_cfg.seq_length}; "
            "raise model.seq_length or shorten rollout.max_clue_tokens / max_vote_tokens"
        )
    # A packed row is longer than any of its sequences, but no position goes beyond them.
    width = max(row.width for row in rows)
    micro_rows: list[list[_SharedRow]] = [[]]
    for row in rows:
        if (
            micro_rows[-1]
            and sum(r.num_sequences for r in micro_rows[-1]) + row.num_sequences > micro_batch_size
        ):
            micro_rows.append([])
        micro_rows[-1].append(row)
    num_rows = max(len(m) for m in micro_rows)
    with region("batching"):
        return [_collate_shared(m, num_rows, width, tokenizer) for m in micro_rows]


@dataclass(slots=True)
class _SharedRow:
    """One prompt group packed into a row (see `make_shared_prompt_micro_batches`)."""

    prompt: PromptInputs
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    """(3, L) M-RoPE positions: the prompt's own, then each segment's as on its own."""
    segment: torch.Tensor
    """(L,) the segment of each token; -1 on the shared prompt."""
    labels: torch.Tensor
    loss_mask: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    advantages: torch.Tensor
    rows: list[int]

    @property
    def width(self) -> int:
        return int(self.input_ids.numel())

    @property
    def num_sequences(self) -> int:
        return len(self.rows)

    @classmethod
    def build(
        cls,
        seqs: list[TrainSequence],
        rows: list[int],
        tokenizer: VLTokenizer,
        model_cfg: ModelConfig,
    ) -> _SharedRow:
        prompt = seqs[0].prompt
        own = collate_prompts([prompt], tokenizer, model_cfg, padding_side="right")
        p = len(prompt)
        if prompt.input_ids[-1] == tokenizer.image_pad_id:
            raise ValueError(
                "a prompt ending in an image token cannot be shared (no text after it)"
            )
        ids, positions, segment = (
            [prompt.input_ids[: p - 1]],
            [own.position_ids[:, 0, : p - 1]],
            [torch.full((p - 1,), -1, dtype=torch.long)],
        )
        targets, mask, old, ref, adv = [], [], [], [], []
        zeros = torch.zeros(p - 1)
        targets.append(torch.cat([prompt.input_ids[1 : p - 1], prompt.input_ids[p - 1 :]]))
        mask.append(zeros), old.append(zeros), ref.append(zeros), adv.append(zeros)
        next_position = int(own.next_position[0])
        for j, s in enumerate(seqs):
            r = len(s.response_ids)
            response = torch.tensor(s.response_ids, dtype=torch.long)
            ids.append(torch.cat([prompt.input_ids[p - 1 :], response]))
            segment.append(torch.full((r + 1,), j, dtype=torch.long))
            positions.append(
                torch.cat(
                    [
                        own.position_ids[:, 0, p - 1 :],
                        (next_position + torch.arange(r)).expand(3, r),
                    ],
                    dim=1,
                )
            )
            # Segment position k predicts response token k; its last position predicts nothing.
            targets.append(torch.cat([response, torch.tensor([tokenizer.pad_id])]))
            scored = torch.cat([torch.ones(r), torch.zeros(1)])
            mask.append(scored)
            old.append(torch.cat([torch.tensor(s.old_logp, dtype=torch.float32), torch.zeros(1)]))
            ref_logp = s.ref_logp if s.ref_logp is not None else [0.0] * r
            ref.append(torch.cat([torch.tensor(ref_logp, dtype=torch.float32), torch.zeros(1)]))
            adv.append(scored * s.advantage)
        return cls(
            prompt=prompt,
            input_ids=torch.cat(ids),
            position_ids=torch.cat(positions, dim=1),
            segment=torch.cat(segment),
            labels=torch.cat(targets),
            loss_mask=torch.cat(mask),
            old_logp=torch.cat(old),
            ref_logp=torch.cat(ref),
            advantages=torch.cat(adv),
            rows=rows,
        )


def _collate_shared(
    rows: list[_SharedRow], num_rows: int, width: int, tokenizer: VLTokenizer
) -> MicroBatch:
    # Filler rows repeat the first row (so every row has an image) with no loss.
    fill = rows + [rows[0]] * (num_rows - len(rows))
    input_ids = torch.full((num_rows, width), tokenizer.pad_id, dtype=torch.long)
    labels = torch.full((num_rows, width), tokenizer.pad_id, dtype=torch.long)
    position_ids = torch.zeros((3, num_rows, width), dtype=torch.long)
    segment = torch.full((num_rows, width), -2, dtype=torch.long)  # -2: padding
    per_token = {
        name: torch.zeros((num_rows, width))
        for name in ("loss_mask", "old_logp", "ref_logp", "advantages")
    }
    for b, row in enumerate(fill):
        n = row.width
        input_ids[b, :n], labels[b, :n] = row.input_ids, row.labels
        position_ids[:, b, :n], segment[b, :n] = row.position_ids, row.segment
        if b < len(rows):
            for name, tensor in per_token.items():
                tensor[b, :n] = getattr(row, name)
    # Query q may read key k <= q of the shared prompt or of its own segment (True = masked).
    causal_TT = torch.ones(width, width, dtype=torch.bool).tril()
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]
    allowed = causal_TT & (seg_k != -2) & ((seg_k == -1) | (seg_k == seg_q))
    first_use: dict[int, int] = {}
    images: list[PromptInputs] = []
    for row in fill:
        if id(row.prompt.pixel_values) not in first_use:
            first_use[id(row.prompt.pixel_values)] = len(images)
            images.append(row.prompt)
    return MicroBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=~allowed[:, None],
        labels=labels,
        pixel_values=torch.cat([p.pixel_values for p in images]),
        image_grid_thw=torch.stack([p.image_grid_thw for p in images]),
        image_of_row=torch.tensor([first_use[id(r.prompt.pixel_values)] for r in fill]),
        rows=[i for row in rows for i in row.rows],
        **per_token,
    )
