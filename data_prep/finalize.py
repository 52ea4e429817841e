"""Merge the per-shard manifest parts into manifest.json and write the energon metadata.

Runs automatically at the end of `generate`/`import` once every shard of every run in the folder
exists, or by hand (e.g. as the dependent step of a Slurm array):

    python -m data_prep finalize runs/data/clevr --val-fraction 0.1

Every shard's sha256 is recomputed against its part. The train/val split is per domain and per
shard (energon splits by shard): round(val_fraction * shards) shards of each domain, drawn with
`split_seed`, go to val. A split that would leave val (or train) empty is an error: write more
shards (lower --pairs-per-shard; 10+ shards per domain for a 0.1 fraction) or pass
--val-fraction 0. A lock file serializes concurrent finalizers (several array tasks finishing at
once); the result is the same whichever runs last. With `energon=False` (`--no-energon`) no
energon metadata is written (and stale metadata is removed): megatron-energon and torch are
not even imported, and only the plain-tar reader (`PairReader`) can read the set.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from data_prep.energon_meta import remove_energon_metadata, write_energon_metadata
from data_prep.shards import (
    META_DIR,
    PARTS_DIR,
    RUNS_DIR,
    ShardPart,
    run_fingerprint,
    shard_name,
    write_atomic,
)
from vzero_nemo.data.manifest import MANIFEST_FILE, Manifest, ShardEntry


def load_runs(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The runs recorded in the folder, by domain."""
    runs_dir = out_dir / RUNS_DIR
    runs = {p.stem: json.loads(p.read_bytes()) for p in sorted(runs_dir.glob("*.json"))}
    if not runs:
        raise ValueError(
            f"no runs recorded under {str(runs_dir)!r}: run `python -m data_prep generate` or "
            "`import` into this folder first"
        )
    return runs


def missing_shards(out_dir: Path) -> list[str]:
    """Shards of recorded runs that have no manifest part yet (cheap: no checksums)."""
    missing = []
    for domain, run in load_runs(out_dir).items():
        for index in range(run["num_shards"]):
            name = shard_name(domain, index)
            if not (out_dir / PARTS_DIR / f"{name}.json").is_file():
                missing.append(name)
    return missing


def num_val_shards(domain: str, num_shards: int, val_fraction: float) -> int:
    """round(val_fraction * num_shards): the val shards of one domain. Raises ValueError when
    the split cannot hold both a train and a val shard (energon splits by shard)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    num_val = round(val_fraction * num_shards)
    if val_fraction > 0 and not 0 < num_val < num_shards:
        raise ValueError(
            f"{domain}: {num_shards} shards with --val-fraction {val_fraction} gives "
            f"{num_val} val and {num_shards - num_val} train shards (energon splits by "
            f"shard); write >= {int(round(1 / val_fraction))} shards per domain (lower "
            "--pairs-per-shard) or pass --val-fraction 0"
        )
    return num_val


def choose_splits(
    shards: list[ShardEntry], val_fraction: float, split_seed: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train names, val names): per domain, round(val_fraction * n) shards drawn to val."""
    train: list[str] = []
    val: list[str] = []
    for domain in sorted({s.domain for s in shards}):
        names = sorted(s.name for s in shards if s.domain == domain)
        num_val = num_val_shards(domain, len(names), val_fraction)
        random.Random(f"{split_seed}:{domain}").shuffle(names)
        val += names[:num_val]
        train += names[num_val:]
    return tuple(sorted(train)), tuple(sorted(val))


@contextmanager
def _finalize_lock(out_dir: Path) -> Iterator[None]:
    with open(out_dir / META_DIR / "finalize.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _checked_entry(out_dir: Path, name: str, fingerprint: str) -> ShardEntry:
    part = ShardPart.from_file(out_dir / PARTS_DIR / f"{name}.json")
    if part.run_fingerprint != fingerprint:
        raise ValueError(f"{name} was written by another run (fingerprint); rerun generate")
    digest = hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
    if digest != part.sha256:
        raise ValueError(f"{name}: sha256 differs from its manifest part; rerun generate")
    return ShardEntry(
        name=part.name,
        domain=part.domain,
        num_samples=part.num_samples,
        first_index=part.first_index,
        sha256=part.sha256,
        generator=part.generator,
    )


def finalize(
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    workers: int = 1,
    energon: bool = True,
) -> Manifest:
    """Check every shard, write manifest.json (atomically) and the energon metadata."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"{str(out_dir)!r} is not a folder")
    runs = load_runs(out_dir)
    missing = missing_shards(out_dir)
    if missing:
        raise ValueError(
            f"{len(missing)} shards are not written yet (e.g. {missing[:3]}); finish the "
            "generate/import runs (rerun them: complete shards are skipped), then finalize"
        )
    with _finalize_lock(out_dir):
        jobs = [
            (shard_name(domain, i), run_fingerprint(run))
            for domain, run in runs.items()
            for i in range(run["num_shards"])
        ]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            entries = list(pool.map(lambda job: _checked_entry(out_dir, *job), jobs))
        entries.sort(key=lambda e: e.name)
        runs_out = {}
        for domain, run in runs.items():
            generators = sorted({e.generator for e in entries if e.domain == domain})
            if len(generators) != 1:
                raise ValueError(
                    f"{domain} shards come from different generator versions {generators}; "
                    "regenerate into a fresh folder"
                )
            runs_out[domain] = {**run, "generator": generators[0]}
        train, val = choose_splits(entries, val_fraction, split_seed)
        manifest = Manifest(
            shards=tuple(entries),
            runs=runs_out,
            train=train,
            val=val,
            val_fraction=val_fraction,
            split_seed=split_seed,
            energon_metadata=energon,
        )
        if energon:
            write_energon_metadata(out_dir, manifest, workers=workers)
        else:
            remove_energon_metadata(out_dir, manifest)
        write_atomic(out_dir / MANIFEST_FILE, manifest.to_json().encode())
    return manifest
