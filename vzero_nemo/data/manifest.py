"""The shard-set manifest (`manifest.json`): what a shard directory holds.

Written by `python -m data_prep finalize` (or automatically when the last shard of a run is
written), read by the training reader and by `python -m data_prep verify`. It lists every shard
with its domain, sample count and sha256, the per-domain counts and generation arguments, and the
train/val split over shards (the same split the energon metadata in `.nv-meta/` describes).

    {"format_version": 1, "schema_version": 1, "num_pairs": 1200,
     "counts": {"clevr": 1200},
     "runs": {"clevr": {"source": "generate", "seed": 0, "num_pairs": 1200, ...}},
     "shards": [{"name": "clevr-000000.tar", "domain": "clevr", "num_samples": 100,
                 "first_index": 0, "sha256": "...", "generator": "clevr@1"}, ...],
     "splits": {"val_fraction": 0.1, "split_seed": 0, "train": [...], "val": [...]},
     "energon_metadata": true}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vzero_nemo.data.schema import DOMAINS, SCHEMA_VERSION

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
SPLITS = ("train", "val")


@dataclass(frozen=True, slots=True)
class ShardEntry:
    """One shard file of the set.

    name: file name relative to the set directory, e.g. "clevr-000003.tar".
    domain: the domain of every sample in the shard.
    num_samples: number of pairs in the shard.
    first_index: index (within its run) of the shard's first pair.
    sha256: hex digest of the whole tar file.
    generator: "<name>@<version>" of the code that made its pairs.
    """

    name: str
    domain: str
    num_samples: int
    first_index: int
    sha256: str
    generator: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "num_samples": self.num_samples,
            "first_index": self.first_index,
            "sha256": self.sha256,
            "generator": self.generator,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardEntry:
        return cls(
            name=str(d["name"]),
            domain=str(d["domain"]),
            num_samples=int(d["num_samples"]),
            first_index=int(d["first_index"]),
            sha256=str(d["sha256"]),
            generator=str(d["generator"]),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The whole set: shards (sorted by name), per-domain runs and the train/val split."""

    shards: tuple[ShardEntry, ...]
    runs: dict[str, dict[str, Any]]
    train: tuple[str, ...]
    val: tuple[str, ...]
    val_fraction: float
    split_seed: int
    energon_metadata: bool = True
    schema_version: int = SCHEMA_VERSION

    @property
    def counts(self) -> dict[str, int]:
        """Number of pairs per domain."""
        counts = {d: 0 for d in DOMAINS if any(s.domain == d for s in self.shards)}
        for shard in self.shards:
            counts[shard.domain] += shard.num_samples
        return counts

    @property
    def num_pairs(self) -> int:
        return sum(s.num_samples for s in self.shards)

    def shard(self, name: str) -> ShardEntry:
        for entry in self.shards:
            if entry.name == name:
                return entry
        raise KeyError(f"shard {name!r} is not in the manifest")

    def split_shards(self, split: str) -> tuple[ShardEntry, ...]:
        """Shards of `split` ("train", "val" or "all"), sorted by name."""
        if split == "all":
            return self.shards
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS + ('all',)}")
        names = set(self.train if split == "train" else self.val)
        return tuple(s for s in self.shards if s.name in names)

    def to_json(self) -> str:
        d = {
            "format_version": MANIFEST_FORMAT_VERSION,
            "schema_version": self.schema_version,
            "num_pairs": self.num_pairs,
            "counts": self.counts,
            "runs": self.runs,
            "shards": [s.to_dict() for s in self.shards],
            "energon_metadata": self.energon_metadata,
            "splits": {
                "val_fraction": self.val_fraction,
                "split_seed": self.split_seed,
                "train": list(self.train),
                "val": list(self.val),
            },
        }
        return json.dumps(d, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: str | bytes) -> Manifest:
        d = json.loads(raw)
        version = d.get("format_version")
        if version != MANIFEST_FORMAT_VERSION:
            raise ValueError(
                f"manifest format_version {version!r} != supported {MANIFEST_FORMAT_VERSION}"
            )
        splits = d["splits"]
        return cls(
            shards=tuple(ShardEntry.from_dict(s) for s in d["shards"]),
            runs=dict(d["runs"]),
            train=tuple(splits["train"]),
            val=tuple(splits["val"]),
            val_fraction=float(splits["val_fraction"]),
            split_seed=int(splits["split_seed"]),
            energon_metadata=bool(d["energon_metadata"]),
            schema_version=int(d["schema_version"]),
        )


def load_manifest(directory: str | Path) -> Manifest:
    """Read `<directory>/manifest.json`; a clear error if the set is not finalized."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"shard directory {str(directory)!r} does not exist or is not a folder")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(
            f"{str(path)!r} not found: the set is not finalized; run "
            f"`python -m data_prep finalize {directory}` after all shards are written"
        )
    return Manifest.from_json(path.read_bytes())
