"""Which prompt tokens the prefill computes, and where each one lands (pure tensor logic).

A turn's prompts repeat a lot: every seat's prompt starts with the same system turn (the game
rules, ~170 of ~310 tokens with `prompt_style=full`), and the observer's `num_votes` samples
of one game are the same prompt. The prefill therefore computes
- each DISTINCT prompt once (same token ids and same image = one unique row), and
- their longest common prefix once (cut before the first image token, whose features differ
  per image, and at least one token short of the shortest prompt),
as ONE packed sequence without padding: [prefix | suffix of unique row 0 | suffix of 1 | ...].

For the attention the packed tokens are scattered into a right-aligned "work" layout of
U + 1 rows (U unique rows, plus one row holding the prefix alone when there is a prefix),
where row u's prompt fills columns [0, len_u). Every unique row gets a copy of the prefix
keys/values in columns [0, P), so causal attention in the work layout is exactly attention
within each prompt. Each batch row's cache then copies its unique row's work row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vzero_nemo.models.batch import PromptBatch, distinct_images, select_images


@dataclass(frozen=True, slots=True)
class PrefillPlan:
    unique_rows_U: torch.Tensor
    """Batch row of each distinct prompt (its first occurrence) [U]."""
    unique_of_row_B: torch.Tensor
    """Distinct prompt of each batch row [B] (index into unique_rows_U)."""
    lengths_U: torch.Tensor
    """Real tokens of each distinct prompt [U]."""
    prefix_len: int
    """Tokens computed once for all rows (P); 0 when the prompts share none."""
    source_unique_N: torch.Tensor
    """Packed token n is column source_columns_N[n] of distinct prompt source_unique_N[n]
    in the batch's own (padded) layout [N]."""
    source_columns_N: torch.Tensor
    work_rows_N: torch.Tensor
    """... and sits at (work_rows_N[n], work_columns_N[n]) of the work layout [N]."""
    work_columns_N: torch.Tensor
    last_index_U: torch.Tensor
    """Packed index of each distinct prompt's last token [U]."""

    @property
    def num_unique(self) -> int:
        return int(self.unique_rows_U.numel())

    @property
    def num_work_rows(self) -> int:
        return self.num_unique + (1 if self.prefix_len > 0 else 0)

    @property
    def num_tokens(self) -> int:
        return int(self.source_unique_N.numel())

    @property
    def lengths_B(self) -> torch.Tensor:
        return self.lengths_U[self.unique_of_row_B]


def _distinct_prompts(batch: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(first batch row of each distinct prompt [U], distinct prompt of each row [B])."""
    seen: dict[tuple, int] = {}
    unique_rows, unique_of_row = [], []
    images_B = batch.image_of_row.tolist()
    for row in range(batch.input_ids.shape[0]):
        key = (tuple(batch.input_ids[row][batch.attention_mask[row]].tolist()), images_B[row])
        if key not in seen:
            seen[key] = len(unique_rows)
            unique_rows.append(row)
        unique_of_row.append(seen[key])
    return torch.tensor(unique_rows), torch.tensor(unique_of_row)


def _common_prefix(ids: list[torch.Tensor], image_token_id: int) -> int:
    """Longest common prefix of the token rows, before any image token, shorter than all."""
    limit = min(len(row) for row in ids) - 1
    first = ids[0][:limit]
    same = torch.ones(limit, dtype=torch.bool)
    for row in ids[1:]:
        same &= row[:limit] == first
    same &= first != image_token_id
    return int(same.long().cumprod(0).sum()) if limit > 0 else 0


def plan_prefill(batch: PromptBatch, image_token_id: int, share_prefix: bool = True) -> PrefillPlan:
    """The prefill plan of a collated batch (left or right padding)."""
    mask_BS = batch.attention_mask.bool()
    unique_rows_U, unique_of_row_B = _distinct_prompts(batch)
    first_column_U = mask_BS[unique_rows_U].long().argmax(dim=1)
    lengths_U = mask_BS[unique_rows_U].sum(dim=1)
    ids = [
        batch.input_ids[row, int(first) : int(first) + int(n)]
        for row, first, n in zip(unique_rows_U, first_column_U, lengths_U)
    ]
    num_unique = int(unique_rows_U.numel())
    # One distinct prompt has nothing to share; sharing would only add a work row.
    prefix = _common_prefix(ids, image_token_id) if share_prefix and num_unique > 1 else 0
    source_unique, source_columns, work_rows, work_columns = [], [], [], []
    if prefix > 0:
        source_unique.append(torch.zeros(prefix, dtype=torch.long))
        source_columns.append(first_column_U[0] + torch.arange(prefix))
        work_rows.append(torch.full((prefix,), num_unique))
        work_columns.append(torch.arange(prefix))
    for u in range(num_unique):
        suffix = torch.arange(prefix, int(lengths_U[u]))
        source_unique.append(torch.full((suffix.numel(),), u))
        source_columns.append(first_column_U[u] + suffix)
        work_rows.append(torch.full((suffix.numel(),), u))
        work_columns.append(suffix)
    suffix_lengths_U = lengths_U - prefix
    return PrefillPlan(
        unique_rows_U=unique_rows_U,
        unique_of_row_B=unique_of_row_B,
        lengths_U=lengths_U,
        prefix_len=prefix,
        source_unique_N=torch.cat(source_unique),
        source_columns_N=torch.cat(source_columns),
        work_rows_N=torch.cat(work_rows),
        work_columns_N=torch.cat(work_columns),
        last_index_U=prefix + torch.cumsum(suffix_lengths_U, 0) - 1,
    )


def unique_images(
    batch: PromptBatch, rows_U: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pixel_values, image_grid_thw, image_of_row) of the batch rows `rows_U`: each image
    those rows show once, and the one each row shows."""
    images, image_of_row_U = distinct_images(batch.image_of_row[rows_U])
    pixel_values, image_grid_thw = select_images(batch.pixel_values, batch.image_grid_thw, images)
    return pixel_values, image_grid_thw, image_of_row_U
