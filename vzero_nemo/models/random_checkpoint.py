"""Write a randomly initialised Hugging Face Qwen2.5-VL checkpoint at a published size's widths.

    python -m vzero_nemo.models.random_checkpoint --width 7b --num-layers 2 --vision-depth 2 \
        --out /tmp/qwen25vl_7b_width

The folder looks like a user's local checkpoint of that size with fewer layers: `config.json`
(transformers' `Qwen2_5_VLConfig`), bf16 weights as sharded safetensors
`model-0000i-of-0000n.safetensors` with `model.safetensors.index.json` (tensor names as in the
published checkpoints, shards of at most `--max-shard-mb`), and a tokenizer:

- `--tokenizer qwen` (default): a Qwen2.5-VL-style tokenizer. No Qwen vocabulary ships here,
  so it is the project's byte-level BPE padded with unused entries until Qwen's 22 special
  tokens sit at their published ids (<|endoftext|> = 151643, <|im_end|> = 151645,
  <|image_pad|> = 151655, ...), with Qwen's chat template; the embedding has the size's
  published rows (152064; 151936 for 3B).
- `--tokenizer tiny`: the project's tiny tokenizer (2048 rows), for a published-width model
  whose vocabulary matrices fit a CPU training run.

Widths, heads, FFN, M-RoPE sections, the vision tower's patch / merge / window sizes are the
published ones; `--num-layers` and `--vision-depth` reduce the depth. The vision tower keeps
the published full-attention blocks below `--vision-depth`, or makes its last block the
full-attention one, so windowed and full attention both run. Tensors are named and shaped by
transformers' `Qwen2_5_VLForConditionalGeneration` built on the meta device, drawn from one
seeded normal stream (std 0.02, biases too so QKV biases are exercised; norm weights 1 +- 0.1)
and written shard by shard: memory peaks at one shard, never the model. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from vzero_nemo.models.chat import QWEN25VL_CHAT_TEMPLATE
from vzero_nemo.models.hf_files import write_sharded
from vzero_nemo.models.sizes import PUBLISHED, Qwen25VLDims, check_dims, padded_vocab_size
from vzero_nemo.models.tokenizer import (
    ENDOFTEXT,
    IM_END,
    TINY_TOKENIZER_FILE,
    from_hf_tokenizer,
    tiny_tokenizer,
)

QWEN_FIRST_SPECIAL_ID = 151643
QWEN_SPECIAL_TOKENS = (
    # (content, special) in id order from 151643, as Qwen2.5-VL's tokenizer_config.json
    *[
        (t, True)
        for t in (
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|object_ref_start|>",
            "<|object_ref_end|>",
            "<|box_start|>",
            "<|box_end|>",
            "<|quad_start|>",
            "<|quad_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|vision_pad|>",
            "<|image_pad|>",
            "<|video_pad|>",
        )
    ],
    *[
        (t, False)
        for t in (
            "<tool_call>",
            "</tool_call>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        )
    ],
)
WIDTHS = tuple(PUBLISHED)
_CHUNK = 1 << 24  # elements drawn per randn call: bounds the fp32 scratch to 64 MB


def reduced_dims(width: str, num_layers: int, vision_depth: int) -> Qwen25VLDims:
    """The published dimensions of `width` with `num_layers` language layers and
    `vision_depth` vision blocks (keeping at least one windowed and one full block)."""
    if width not in WIDTHS:
        raise ValueError(f"--width {width!r}; use one of {WIDTHS}")
    published = PUBLISHED[width]
    if not 1 <= num_layers <= published.num_layers:
        raise ValueError(f"--num-layers {num_layers}; use 1..{published.num_layers}")
    if not 2 <= vision_depth <= published.vision.depth:
        raise ValueError(
            f"--vision-depth {vision_depth}; use 2..{published.vision.depth} (one windowed and "
            "one full-attention block at least)"
        )
    full = tuple(i for i in published.vision.fullatt_block_indexes if i < vision_depth)
    vision = dataclasses.replace(
        published.vision, depth=vision_depth, fullatt_block_indexes=full or (vision_depth - 1,)
    )
    dims = dataclasses.replace(published, num_layers=num_layers, vision=vision, hf_model_id=None)
    check_dims(dims, f"--width {width}")
    return dims


def qwen_style_tokenizer():
    """A transformers fast tokenizer with Qwen2.5-VL's special-token ids and chat template
    (BPE merges: the project's tiny tokenizer's)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    state = json.loads(TINY_TOKENIZER_FILE.read_text(encoding="utf-8"))
    vocab = state["model"]["vocab"]
    for i in range(len(vocab), QWEN_FIRST_SPECIAL_ID):
        vocab[f"<|unused_{i}|>"] = i  # never produced: no merge builds these strings
    state["added_tokens"] = [
        dict(
            id=QWEN_FIRST_SPECIAL_ID + i,
            content=content,
            single_word=False,
            lstrip=False,
            rstrip=False,
            normalized=False,
            special=special,
        )
        for i, (content, special) in enumerate(QWEN_SPECIAL_TOKENS)
    ]
    hf = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)),
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
    )
    hf.chat_template = QWEN25VL_CHAT_TEMPLATE
    return hf


def hf_tensor_shapes(config) -> list[tuple[str, tuple[int, ...]]]:
    """(name as saved in published checkpoints, shape) of every weight of the HF model."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    shapes = []
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        name = name.replace("model.language_model.", "model.", 1)
        name = name.replace("model.visual.", "visual.", 1)
        shapes.append((name, tuple(tensor.shape)))
    return shapes


def _draw(shape: tuple[int, ...], mean: float, std: float, gen: torch.Generator) -> torch.Tensor:
    out = torch.empty(shape, dtype=torch.bfloat16)
    flat = out.view(-1)
    for start in range(0, flat.numel(), _CHUNK):
        n = min(_CHUNK, flat.numel() - start)
        flat[start : start + n] = torch.randn(n, generator=gen).mul_(std).add_(mean)
    return out


def random_tensors(
    shapes: list[tuple[str, tuple[int, ...]]], seed: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """Seeded bf16 tensors in `shapes` order, one at a time."""
    gen = torch.Generator().manual_seed(seed)
    for name, shape in shapes:
        is_norm = "norm" in name or name.endswith("ln_q.weight")
        yield name, _draw(shape, 1.0 if is_norm else 0.0, 0.1 if is_norm else 0.02, gen)


def write_random_checkpoint(
    out: str | Path,
    *,
    width: str,
    num_layers: int,
    vision_depth: int,
    tokenizer: str = "qwen",
    seed: int = 0,
    max_shard_bytes: int = 2**30,
) -> Path:
    """Write the checkpoint described in the module docstring to `out`; returns `out`."""
    from vzero_nemo.models.hf_config import hf_config_from_dims

    if tokenizer not in ("qwen", "tiny"):
        raise ValueError(f"--tokenizer {tokenizer!r}; use 'qwen' or 'tiny'")
    dims = reduced_dims(width, num_layers, vision_depth)
    if tokenizer == "qwen":
        hf_tok = qwen_style_tokenizer()
        vocab_size = dims.vocab_size
    else:
        hf_tok = tiny_tokenizer().hf
        vocab_size = padded_vocab_size(len(hf_tok))
    ids = from_hf_tokenizer(hf_tok, name=tokenizer).special_ids
    assert vocab_size is not None and len(hf_tok) <= vocab_size
    config = hf_config_from_dims(dims, ids, vocab_size)
    config.dtype = torch.bfloat16
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    hf_tok.save_pretrained(out)
    write_sharded(random_tensors(hf_tensor_shapes(config), seed), out, max_shard_bytes)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vzero_nemo.models.random_checkpoint",
        description="Write a random Qwen2.5-VL checkpoint at a published size's widths.",
    )
    parser.add_argument("--width", required=True, choices=WIDTHS)
    parser.add_argument("--num-layers", type=int, default=2, help="language layers")
    parser.add_argument("--vision-depth", type=int, default=2, help="vision blocks")
    parser.add_argument("--tokenizer", default="qwen", choices=("qwen", "tiny"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shard-mb", type=int, default=1024)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        out = write_random_checkpoint(
            args.out,
            width=args.width,
            num_layers=args.num_layers,
            vision_depth=args.vision_depth,
            tokenizer=args.tokenizer,
            seed=args.seed,
            max_shard_bytes=args.max_shard_mb * 2**20,
        )
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    files = sorted(p.name for p in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
