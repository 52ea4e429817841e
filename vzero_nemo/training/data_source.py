"""Games for the trainer: image pairs from the shard reader, one DP rank's share.

`GameSource.next_pairs(n)` returns the next n pairs of this rank (the reader shuffles, shards
by DP rank and moves on to the next epoch by itself); its state is the reader's resumable
position, saved in every checkpoint.
"""

from __future__ import annotations

from typing import Any

from vzero_nemo.data.pairs import GamePair
from vzero_nemo.data.reader import PairReader


class GameSource:
    def __init__(
        self,
        path: str,
        *,
        dp_rank: int,
        dp_size: int,
        seed: int,
        split: str = "train",
        num_epochs: int | None = None,
        shuffle: bool = True,
    ) -> None:
        self.reader = PairReader(
            path,
            split=split,
            seed=seed,
            shuffle=shuffle,
            rank=dp_rank,
            world_size=dp_size,
            num_epochs=num_epochs,
        )
        self._iter = iter(self.reader)

    @property
    def num_corrupt_shards(self) -> int:
        return int(self.reader.num_corrupt_shards)

    def next_pairs(self, n: int) -> list[GamePair]:
        pairs = []
        for _ in range(n):
            try:
                p = next(self._iter)
            except StopIteration:
                raise ValueError(
                    f"the {self.reader.split!r} split of {str(self.reader.path)!r} ran out of "
                    f"pairs after {len(pairs)} of {n}; generate more pairs"
                ) from None
            pairs.append(GamePair(p.key, p.original, p.modified, p.truth))
        return pairs

    def state_dict(self) -> dict[str, Any]:
        return self.reader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reader.load_state_dict(state)
        self._iter = iter(self.reader)
