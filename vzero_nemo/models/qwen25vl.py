"""The policy network: Megatron-Bridge's Qwen2.5-VL model with explicit positions.

`VZeroQwen25VLModel` subclasses Bridge's `Qwen25VLModel` (HF vision tower in the first
pipeline stage + megatron-core GPT language model) and changes only `forward`:

- M-RoPE positions are an input (`position_ids`, (3, B, T), from
  `vzero_nemo.models.batch`), not recomputed from `input_ids`. Bridge's forward recomputes
  them without the padding mask and cannot place tokens decoded from a KV cache; explicit
  positions make prefill, KV-cached decoding and scoring agree.
- `inference_context` (megatron-core's `StaticInferenceContext`) is passed to the language
  model. Megatron's static cache stores keys before RoPE and rotates the whole cache at each
  step, so with it `position_ids` must cover every position so far, (3, B, offset + T_new),
  while `input_ids` holds only the T_new new tokens (tested against a full forward).

    logits_BTV = model(input_ids_BT, position_ids_3BT, attention_mask_B1TT,
                       pixel_values=..., image_grid_thw=..., image_of_row=...)

Images: `pixel_values` / `image_grid_thw` hold I images and `image_of_row` (B,) says which
one each row shows, so an image shown by several rows goes through the vision tower once
(`PromptBatch.vision_inputs()` gives all three). Without `image_of_row`, row b shows image b
(transformers' convention).

Returns logits (B, T, V / TP) with the vocabulary split over tensor-parallel ranks (use
`vzero_nemo.models.logprobs`), or, with `labels` (B, T), megatron's per-token cross entropy
(B, T) = -log p(labels). With `labels` and `loss_mask` (B, T) the output layer and the
vocabulary softmax run only where `loss_mask` is non-zero (the response tokens of a policy
batch: a quarter of the tokens in the tiny recipe, fewer at scale) and the cross entropy is
0 elsewhere, so any loss that multiplies by the mask is unchanged, and the (B, T, V)
logits are never materialised (without sequence parallelism, which splits the positions). Middle pipeline stages return hidden states; the first stage owns
the vision tower and takes `pixel_values` / `image_grid_thw`.

Padding: megatron-core's local attention (CPU) applies the explicit mask, so left- and
right-padded batches both work. Transformer-engine's fused attention in megatron's TE layer
spec is causal-only and ignores the mask; with it (`config.attention_mask_is_applied` False)
the forward accepts only masks that are causal for every real query, i.e. right padding
(`collate_prompts(..., padding_side="right")`), and raises ValueError otherwise.
"""

from __future__ import annotations

import torch
from megatron.bridge.models.qwen_vl.modeling_qwen25_vl import Qwen25VLModel
from megatron.core.tensor_parallel import scatter_to_sequence_parallel_region

from vzero_nemo.models.logprobs import masked_cross_entropy
from vzero_nemo.profiling import region


class VZeroQwen25VLModel(Qwen25VLModel):
    """Qwen2.5-VL (Megatron-Bridge) taking M-RoPE positions and a KV-cache context."""

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None,
        image_of_row: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the image features scattered into the <|image_pad|> slots:
        (T, B, H), megatron's sequence-first layout. First pipeline stage only. Each image
        of `pixel_values` is encoded once; row b gets image `image_of_row[b]` (default b)."""
        embeds = self.language_model.embedding(input_ids=input_ids, position_ids=None)
        if pixel_values is None:
            return embeds
        if image_grid_thw is None:
            raise ValueError("pixel_values given without image_grid_thw; pass both")
        embeds = embeds.transpose(0, 1)  # (B, T, H)
        with region("vision"):
            features = self.get_image_features(pixel_values, image_grid_thw, return_dict=True)
            per_image = features.pooler_output
            if image_of_row is not None:
                per_image = [per_image[i] for i in image_of_row.tolist()]
            image_embeds = torch.cat(per_image, dim=0).to(embeds.dtype)
        image_mask, _ = self.get_placeholder_mask(
            input_ids, inputs_embeds=embeds, image_features=image_embeds
        )
        return embeds.masked_scatter(image_mask, image_embeds).transpose(0, 1).contiguous()

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inference_context=None,
        runtime_gather_output: bool | None = None,
        *,
        loss_mask: torch.Tensor | None = None,
        image_of_row: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T) long; position_ids (3, B, T) long; attention_mask (B, 1, T, Tk)
        bool with True = masked (None: causal without padding)."""
        if position_ids is None or position_ids.dim() != 3 or position_ids.shape[0] != 3:
            shape = None if position_ids is None else tuple(position_ids.shape)
            raise ValueError(
                f"position_ids must be (3, B, T) M-RoPE positions, got {shape}; build them "
                "with vzero_nemo.models.batch.collate_prompts / mrope_position_ids"
            )
        if not self.config.attention_mask_is_applied:
            _require_causal_for_real_queries(attention_mask)
        decoder_input = None
        if self.pre_process:
            decoder_input = self.embed(input_ids, pixel_values, image_grid_thw, image_of_row)
            if self.config.sequence_parallel:
                tp_group = self.config._pg_collection.tp
                decoder_input = scatter_to_sequence_parallel_region(decoder_input, group=tp_group)
        masked_loss = (
            labels is not None and loss_mask is not None and not self.config.sequence_parallel
        )
        return self.language_model(
            input_ids=None,
            position_ids=position_ids,
            attention_mask=attention_mask,
            decoder_input=decoder_input,
            labels=labels,
            inference_context=inference_context,
            runtime_gather_output=runtime_gather_output,
            loss_mask=loss_mask,
            output_processor=masked_cross_entropy if masked_loss else None,
            output_processor_context=loss_mask,
        )


def _require_causal_for_real_queries(attention_mask: torch.Tensor | None) -> None:
    """A causal-only attention kernel gives the right result iff every real query (one that
    may attend to itself; padding keys are masked) may attend to exactly its causal prefix."""
    if attention_mask is None:
        return
    allowed = ~attention_mask[:, 0]  # (B, Tq, Tk)
    q, k = allowed.shape[-2:]
    real_query = torch.diagonal(allowed, offset=k - q, dim1=-2, dim2=-1)  # (B, Tq)
    causal = torch.ones(q, k, dtype=torch.bool, device=allowed.device).tril(k - q)
    if torch.any(real_query[..., None] & (allowed != causal)):
        raise ValueError(
            "this layer spec's fused attention is causal-only and ignores the padding mask; "
            "right-pad the batch (collate_prompts(..., padding_side='right'))"
        )
