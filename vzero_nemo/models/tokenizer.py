"""Tokenizers behind one interface: the project's tiny byte-level BPE, or a checkpoint's own.

    from vzero_nemo.models.tokenizer import load_tokenizer
    tok = load_tokenizer(cfg.model)          # VLTokenizer
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>")

`tiny` uses a 2048-token byte-level BPE that the project trains OFFLINE on synthetic text made
from the game/data vocabulary (CLEVR colours, shapes, materials and sizes from
`vzero_nemo.data.schema`, chart and photo-edit words, digits, game words, chat-template words)
plus a generic English word list (`assets/tokenizer_words.txt`), so any prompt tokenizes
reasonably (bytes cover everything else). The trained file ships as
`assets/tiny_tokenizer.json` (~100 KB): a checkpoint's embedding rows are tied to its ids, so
the tokenizer must not drift with library versions or prompt edits. Rebuild it (bit-exact,
tested) with

    python -m vzero_nemo.models.tokenizer --write

Special tokens follow Qwen2.5-VL's layout and order and sit after the BPE vocabulary as in
Qwen: <|endoftext|> (padding), <|im_start|>, <|im_end|> (end of turn), <|vision_start|>,
<|vision_end|>, <|vision_pad|>, <|image_pad|>, <|video_pad|>; then <think>, </think>,
<answer>, </answer> as ordinary added tokens (kept by `decode`). Real sizes load the
checkpoint's tokenizer from a local directory (`local_files_only=True`); there <think> and
<answer> are plain text pieces, which the same prompt code handles unchanged. `model.size=auto`
takes its special-token ids from the checkpoint's tokenizer (wherever they sit).
"""

from __future__ import annotations

import argparse
import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vzero_nemo.data import schema
from vzero_nemo.models.sizes import uses_project_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from vzero_nemo.config import ModelConfig

ASSETS = Path(__file__).parent / "assets"
TINY_TOKENIZER_FILE = ASSETS / "tiny_tokenizer.json"
WORDS_FILE = ASSETS / "tokenizer_words.txt"
TINY_VOCAB_SIZE = 2048
"""Tokens of the tiny tokenizer (BPE + special + tag tokens): exactly 16 x 128."""

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
VISION_PAD = "<|vision_pad|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
SPECIAL_TOKENS = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    VISION_START,
    VISION_END,
    VISION_PAD,
    IMAGE_PAD,
    VIDEO_PAD,
)
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True, slots=True)
class SpecialTokenIds:
    """Ids of Qwen2.5-VL's special tokens in one tokenizer."""

    pad: int
    """<|endoftext|>: padding (never attended to) and Qwen's bos id."""
    im_start: int
    im_end: int
    """<|im_end|>: ends an assistant turn; generation stops here."""
    vision_start: int
    vision_end: int
    vision_pad: int
    image_pad: int
    video_pad: int


QWEN25VL_SPECIAL_IDS = SpecialTokenIds(
    pad=151643,
    im_start=151644,
    im_end=151645,
    vision_start=151652,
    vision_end=151653,
    vision_pad=151654,
    image_pad=151655,
    video_pad=151656,
)
"""The published checkpoints' ids (their tokenizer.json), used by the 7B / 32B / 72B sizes."""


@dataclass(frozen=True, slots=True)
class VLTokenizer:
    """A Qwen2.5-VL tokenizer (tiny or a checkpoint's) with its special-token ids.

    `hf` is a transformers fast tokenizer; use `encode` / `decode` rather than calling it
    directly so tiny and real tokenizers behave the same.
    """

    hf: PreTrainedTokenizerBase
    name: str
    pad_id: int
    """<|endoftext|>: left padding of batches (never attended to)."""
    im_start_id: int
    im_end_id: int
    """<|im_end|>: ends an assistant turn; generation stops here."""
    vision_start_id: int
    vision_end_id: int
    vision_pad_id: int
    image_pad_id: int
    video_pad_id: int

    @property
    def special_ids(self) -> SpecialTokenIds:
        return SpecialTokenIds(
            pad=self.pad_id,
            im_start=self.im_start_id,
            im_end=self.im_end_id,
            vision_start=self.vision_start_id,
            vision_end=self.vision_end_id,
            vision_pad=self.vision_pad_id,
            image_pad=self.image_pad_id,
            video_pad=self.video_pad_id,
        )

    @property
    def vision_ids(self) -> tuple[int, ...]:
        """The vision placeholders: input-only, never part of a sampled response."""
        return (
            self.vision_start_id,
            self.vision_end_id,
            self.vision_pad_id,
            self.image_pad_id,
            self.video_pad_id,
        )

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Token ids that end a sampled response (Qwen2.5-VL's generation_config)."""
        return (self.im_end_id, self.pad_id)

    @property
    def chat_template(self) -> str | None:
        """The checkpoint's own chat template (None for the tiny tokenizer)."""
        template = getattr(self.hf, "chat_template", None)
        return template if isinstance(template, str) and template else None

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token strings in it become their single ids."""
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)


def from_hf_tokenizer(hf: PreTrainedTokenizerBase, name: str) -> VLTokenizer:
    ids = {tok: hf.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    unknown = hf.unk_token_id
    missing = [tok for tok, i in ids.items() if i is None or (unknown is not None and i == unknown)]
    if missing:
        raise ValueError(
            f"tokenizer {name!r} lacks the Qwen2.5-VL special tokens {missing}; point "
            "model.tokenizer_path at a Qwen2.5-VL checkpoint's tokenizer"
        )
    return VLTokenizer(
        hf=hf,
        name=name,
        pad_id=ids[ENDOFTEXT],
        im_start_id=ids[IM_START],
        im_end_id=ids[IM_END],
        vision_start_id=ids[VISION_START],
        vision_end_id=ids[VISION_END],
        vision_pad_id=ids[VISION_PAD],
        image_pad_id=ids[IMAGE_PAD],
        video_pad_id=ids[VIDEO_PAD],
    )


def load_tokenizer(model_cfg: ModelConfig) -> VLTokenizer:
    """The tokenizer of `model_cfg`: `tokenizer_path`, else `hf_path`, else (sizes on the
    project's tokenizer: the tiny family) the shipped tiny tokenizer. Never downloads."""
    project = uses_project_tokenizer(model_cfg.size)
    path = model_cfg.tokenizer_path or (None if project else model_cfg.hf_path)
    if path is None:
        if not project:
            raise ValueError(
                f"model.size={model_cfg.size!r} needs its checkpoint's tokenizer: set "
                "model.hf_path (or model.tokenizer_path) to a local Qwen2.5-VL directory"
            )
        return tiny_tokenizer()
    return _load_local(str(path))


def special_token_ids(
    model_cfg: ModelConfig, tokenizer: VLTokenizer | None = None
) -> SpecialTokenIds:
    """The special-token ids the model of `model_cfg` is built with. tiny (and the other sizes
    on the project tokenizer): its tokenizer's; auto: the checkpoint's tokenizer's
    (`hf_convert.check_hf_config` checks them against its config.json). 7B / 32B / 72B: the
    published ids (no tokenizer needed to build a model); a tokenizer that is given or
    configured (`tokenizer_path` / `hf_path`) must agree with them."""
    if model_cfg.size == "auto" or uses_project_tokenizer(model_cfg.size):
        return (tokenizer or load_tokenizer(model_cfg)).special_ids
    if tokenizer is None and (model_cfg.tokenizer_path or model_cfg.hf_path):
        tokenizer = load_tokenizer(model_cfg)
    if tokenizer is not None and tokenizer.special_ids != QWEN25VL_SPECIAL_IDS:
        raise ValueError(
            f"tokenizer {tokenizer.name!r} has special ids {tokenizer.special_ids} but "
            f"model.size={model_cfg.size!r} uses the published {QWEN25VL_SPECIAL_IDS}; use the "
            "Qwen2.5-VL checkpoint's own tokenizer"
        )
    return QWEN25VL_SPECIAL_IDS


@functools.lru_cache(maxsize=4)
def _load_local(path: str) -> VLTokenizer:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ValueError(f"tokenizer directory {path!r} does not exist (nothing is downloaded)")
    hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return from_hf_tokenizer(hf, name=path)


@functools.lru_cache(maxsize=1)
def tiny_tokenizer() -> VLTokenizer:
    """The shipped tiny tokenizer (`assets/tiny_tokenizer.json`)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if not TINY_TOKENIZER_FILE.exists():
        raise ValueError(
            f"{TINY_TOKENIZER_FILE} is missing; rebuild it with "
            "`python -m vzero_nemo.models.tokenizer --write`"
        )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(TINY_TOKENIZER_FILE)),
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
    )
    return from_hf_tokenizer(hf, name="tiny")


# ---------------------------------------------------------------------- training text


def _generic_words() -> list[str]:
    words: list[str] = []
    for line in WORDS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.extend(line.split())
    return words


def training_text(seed: int = 0) -> list[str]:
    """The synthetic lines the tiny BPE is trained on (deterministic)."""
    rng = random.Random(seed)
    words = _generic_words()
    sizes, colors = schema.CLEVR_SIZES, schema.CLEVR_COLORS
    materials, shapes = schema.CLEVR_MATERIALS, schema.CLEVR_SHAPES
    places = ("left", "right", "top", "bottom", "middle", "center", "front", "back")
    lines = [f"{DEFAULT_SYSTEM}", "system\n", "user\n", "assistant\n"] * 20
    for size in sizes:
        for color in colors:
            for material in materials:
                for shape in shapes:
                    place = rng.choice(places)
                    lines.append(f"There is a {size} {color} {material} {shape} on the {place}.")
                    lines.append(f"<answer>{color} {shape}</answer> The {color} {shape}s")
    for n in range(101):
        seat = rng.randint(1, 8)
        lines.append(f"Player {seat} said: {rng.choice(colors)} {rng.choice(shapes)}. {n}")
        lines.append(f"The value is {n}. {n}% of {rng.randint(1, 9)}.{rng.randint(0, 99)}")
    lines += [
        "Who is the spy? Answer 1-4 or N/A. Use <answer></answer>.",
        "<think>The clues match my image.</think><answer>N/A</answer>",
        "You are player 3 of 4, civilian. You are the observer, 4 players. Describe one object.",
        "The bar chart has a title, an axis, labels and a legend. The pie chart has slices.",
    ] * 10
    for _ in range(4000):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        lines.append(sentence[0].upper() + sentence[1:] + rng.choice(".?!,:"))
    return lines


def train_tiny_tokenizer(seed: int = 0):
    """Train the tiny byte-level BPE (returns a `tokenizers.Tokenizer`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE - len(SPECIAL_TOKENS) - len(TAG_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(seed), trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.add_tokens(list(TAG_TOKENS))
    if tok.get_vocab_size() != TINY_VOCAB_SIZE:
        raise RuntimeError(
            f"tiny tokenizer has {tok.get_vocab_size()} tokens, want {TINY_VOCAB_SIZE}: the "
            "training text is too small for the requested merges; enlarge tokenizer_words.txt"
        )
    return tok


def tiny_tokenizer_json() -> str:
    """The tiny tokenizer serialised exactly as shipped."""
    return train_tiny_tokenizer().to_str(pretty=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the tiny tokenizer offline.")
    parser.add_argument("--write", action="store_true", help=f"write {TINY_TOKENIZER_FILE}")
    args = parser.parse_args()
    text = tiny_tokenizer_json()
    if args.write:
        TINY_TOKENIZER_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {TINY_TOKENIZER_FILE} ({len(text)} bytes)")
    else:
        same = TINY_TOKENIZER_FILE.exists() and TINY_TOKENIZER_FILE.read_text() == text
        print(f"rebuilt {len(text)} bytes; identical to shipped file: {same}")


if __name__ == "__main__":
    main()
