"""Training-side reader: image pairs from a finalized shard folder, per DP rank, resumable.

    reader = PairReader("runs/data/clevr", split="train", seed=0, rank=dp_rank,
                        world_size=dp_size, num_epochs=None)
    for pair in reader:            # DecodedPair: key, shard, original, modified (PIL RGB), truth
        ...
    state = reader.state_dict()    # plain JSON-able dict; PairReader(...).load_state_dict(state)

Order of one epoch (every step seeded by (seed, epoch), identical on all ranks):
1. the split's shards (from manifest.json) are permuted;
2. their samples, concatenated in that order, are cut into `world_size` contiguous ranges of
   sizes differing by at most one; rank r reads range r (only the shards it overlaps), so the
   ranks' pairs are disjoint and together are every pair exactly once;
3. the rank's shard slices are read `buffer_shards` at a time and the samples of such a group
   are shuffled together (the shuffle buffer).
The position is (epoch, shard cursor = first slice of the current group, sample offset within
the group), so resuming re-reads the group's tar bytes and skips `offset` samples without
decoding them: the resumed stream equals the rest of the uninterrupted one.

A shard that fails its sha256, tar or member checks is skipped with a warning and counted in
`num_corrupt_shards`; a pair whose PNG or truth fails to decode is skipped and counted in
`num_corrupt_samples`. Images are decoded (libspng) only when their pair is yielded; see
`python -m vzero_nemo.data.bench_reader` for pairs/s on one core.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vzero_nemo.data.manifest import Manifest, ShardEntry, load_manifest
from vzero_nemo.data.schema import MODIFIED_MEMBER, ORIGINAL_MEMBER, TRUTH_MEMBER, Truth
from vzero_nemo.data.tario import CorruptShardError, decode_png_array, read_shard

logger = logging.getLogger(__name__)

STATE_VERSION = 1
DECODE_MODES = ("pil", "numpy")


@dataclass(frozen=True, slots=True)
class DecodedPair:
    """One pair ready for a game: images as PIL RGB (or uint8 HxWx3 arrays) plus its truth."""

    key: str
    shard: str
    original: Image.Image | np.ndarray
    modified: Image.Image | np.ndarray
    truth: Truth


@dataclass(frozen=True, slots=True)
class ShardSlice:
    """Samples [start, stop) (file order) of one shard."""

    name: str
    start: int
    stop: int


def plan_epoch(
    shards: Sequence[ShardEntry],
    *,
    epoch: int,
    seed: int,
    shuffle: bool,
    rank: int,
    world_size: int,
) -> list[ShardSlice]:
    """The shard slices rank `rank` reads in `epoch`, in reading order."""
    order = sorted(shards, key=lambda s: s.name)
    if shuffle:
        permutation = np.random.default_rng([seed, epoch]).permutation(len(order))
        order = [order[i] for i in permutation]
    total = sum(s.num_samples for s in order)
    lo, hi = total * rank // world_size, total * (rank + 1) // world_size
    slices = []
    position = 0
    for shard in order:
        start, stop = max(lo, position), min(hi, position + shard.num_samples)
        if start < stop:
            slices.append(ShardSlice(shard.name, start - position, stop - position))
        position += shard.num_samples
    return slices


class PairReader:
    """Iterates decoded pairs of one split for one DP rank; see the module docstring.

    path: folder with manifest.json and the shards (`python -m data_prep generate`).
    split: "train", "val" or "all". seed: shuffling seed (same on every rank).
    shuffle: permute shards and shuffle within groups; False reads in name/file order.
    rank / world_size: this DP rank and the DP size. buffer_shards: shard slices per shuffle
    group. num_epochs: epochs to read, None for endless. decode: "pil" or "numpy".
    verify_checksums: check each shard's sha256 against the manifest when reading it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        split: str = "train",
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        buffer_shards: int = 4,
        num_epochs: int | None = 1,
        decode: str = "pil",
        verify_checksums: bool = True,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world={world_size}")
        if buffer_shards < 1:
            raise ValueError(f"buffer_shards must be >= 1, got {buffer_shards}")
        if num_epochs is not None and num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None (endless), got {num_epochs}")
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        self.path = Path(path)
        self.manifest: Manifest = load_manifest(self.path)
        self.shards = self.manifest.split_shards(split)
        if not self.shards:
            raise ValueError(
                f"split {split!r} of {str(self.path)!r} has no shards; finalize the set with "
                "--val-fraction > 0 for a val split, or read split='all'"
            )
        self._entries = {s.name: s for s in self.shards}
        self.split, self.seed, self.shuffle = split, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.buffer_shards, self.num_epochs = buffer_shards, num_epochs
        self.decode, self.verify_checksums = decode, verify_checksums
        self._epoch = 0
        self._cursor = 0
        self._offset = 0
        self._corrupt_shards: set[str] = set()
        self.num_corrupt_samples = 0

    @property
    def num_corrupt_shards(self) -> int:
        """Distinct shards skipped because they failed to read."""
        return len(self._corrupt_shards)

    @property
    def epoch(self) -> int:
        return self._epoch

    def pairs_per_epoch(self, epoch: int = 0) -> int:
        """Pairs this rank reads in `epoch` (before skipping corrupt data)."""
        return sum(s.stop - s.start for s in self._plan(epoch))

    def _plan(self, epoch: int) -> list[ShardSlice]:
        return plan_epoch(
            self.shards,
            epoch=epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
        )

    def _load_group(self, group: Sequence[ShardSlice]) -> list[tuple[str, str, dict[str, bytes]]]:
        samples = []
        for piece in group:
            entry = self._entries[piece.name]
            try:
                raw = read_shard(
                    self.path / piece.name,
                    expected_sha256=entry.sha256 if self.verify_checksums else None,
                    expected_samples=entry.num_samples,
                )
            except CorruptShardError as e:
                self._corrupt_shards.add(piece.name)
                logger.warning(
                    "skipping %s (%d corrupt shards so far)", e, len(self._corrupt_shards)
                )
                continue
            samples += [
                (piece.name, key, members) for key, members in raw[piece.start : piece.stop]
            ]
        return samples

    def _group_order(self, num_samples: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(num_samples)
        rng = np.random.default_rng([self.seed, self._epoch, self.rank, self._cursor])
        return rng.permutation(num_samples)

    def _decode(self, shard: str, key: str, members: dict[str, bytes]) -> DecodedPair | None:
        try:
            original = decode_png_array(members[ORIGINAL_MEMBER])
            modified = decode_png_array(members[MODIFIED_MEMBER])
            truth = Truth.from_json(members[TRUTH_MEMBER])
        except (ValueError, KeyError, TypeError) as e:  # ImageDecodeError, JSON, schema
            self.num_corrupt_samples += 1
            logger.warning("skipping pair %s of %s: %s: %s", key, shard, type(e).__name__, e)
            return None
        if self.decode == "numpy":
            return DecodedPair(key, shard, original, modified, truth)
        return DecodedPair(key, shard, Image.fromarray(original), Image.fromarray(modified), truth)

    def __iter__(self) -> Iterator[DecodedPair]:
        """Continue from the current position (fresh reader: start of epoch 0)."""
        while self.num_epochs is None or self._epoch < self.num_epochs:
            slices = self._plan(self._epoch)
            while self._cursor < len(slices):
                group = slices[self._cursor : self._cursor + self.buffer_shards]
                samples = self._load_group(group)
                order = self._group_order(len(samples))
                for position in order[self._offset :]:
                    self._offset += 1  # before yielding: a state taken now excludes this pair
                    pair = self._decode(*samples[position])
                    if pair is not None:
                        yield pair
                self._cursor += len(group)
                self._offset = 0
            self._epoch += 1
            self._cursor = 0

    def _config(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rank": self.rank,
            "world_size": self.world_size,
            "buffer_shards": self.buffer_shards,
            "num_shards": len(self.shards),
        }

    def state_dict(self) -> dict[str, Any]:
        """The position as plain JSON-able data (save it with the training checkpoint)."""
        return {
            "version": STATE_VERSION,
            "epoch": self._epoch,
            "shard_cursor": self._cursor,
            "sample_offset": self._offset,
            "corrupt_shards": sorted(self._corrupt_shards),
            "num_corrupt_samples": self.num_corrupt_samples,
            "config": self._config(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position; call before iterating. The reader's split, seed, rank, world size
        and buffer must equal the saved ones (else the sequence could not continue exactly)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"reader state version {state.get('version')!r} != {STATE_VERSION}")
        saved, mine = state["config"], self._config()
        diffs = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diffs:
            detail = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diffs.items())
            raise ValueError(f"reader state is from another configuration ({detail})")
        self._epoch = int(state["epoch"])
        self._cursor = int(state["shard_cursor"])
        self._offset = int(state["sample_offset"])
        self._corrupt_shards = set(state["corrupt_shards"])
        self.num_corrupt_samples = int(state["num_corrupt_samples"])
