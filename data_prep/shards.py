"""Shard writer: pairs -> deterministic, atomic, resumable WebDataset tar shards.

Pair i of a run is `source(i)`; shard s holds pairs [s*K, min((s+1)*K, N)) for K pairs per shard,
so any subset of shards (`shard_range`, one Slurm array task) can be written independently and
two runs with the same arguments give byte-identical files (fixed tar header fields, members in
key order). Each shard is built in memory, written to a temp file in the same folder and moved
into place with os.replace; then its manifest part `.manifest/shards/<name>.json` (sample count,
sha256, generator version) is written the same way. A shard counts as complete only when its
part exists and the file's sha256 matches it, so a rerun skips complete shards and rewrites
partial ones. `data_prep.finalize` merges the parts into manifest.json and energon metadata.

    python -m data_prep generate --domain clevr --num-pairs 2000 --out runs/data/clevr --seed 0
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vzero_nemo.data.schema import DOMAINS, SCHEMA_VERSION, PairSample

logger = logging.getLogger(__name__)

META_DIR = ".manifest"
RUNS_DIR = f"{META_DIR}/runs"
PARTS_DIR = f"{META_DIR}/shards"
DEFAULT_PAIRS_PER_SHARD = 100

# Fixed tar header fields: the same pairs give the same bytes on any machine and any day.
_TAR_MTIME = 0
_TAR_MODE = 0o644
_TAR_OWNER = "vzero"

PairSource = Callable[[int], PairSample]

_UMASK = os.umask(0)
os.umask(_UMASK)


def shard_name(domain: str, shard_index: int) -> str:
    return f"{domain}-{shard_index:06d}.tar"


def sample_key(domain: str, index: int) -> str:
    """The WebDataset key of pair `index` of a domain's run (no dots: the key ends at a dot)."""
    return f"{domain}_{index:09d}"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What one run writes: N pairs of one domain in shards of K, plus the arguments that define
    the pairs (seed, options, source). Two runs with equal specs write identical shards."""

    domain: str
    num_pairs: int
    pairs_per_shard: int
    arguments: dict[str, Any]

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; expected one of {DOMAINS}")
        if self.num_pairs <= 0:
            raise ValueError(f"num_pairs must be > 0, got {self.num_pairs}")
        if self.pairs_per_shard <= 0:
            raise ValueError(f"pairs_per_shard must be > 0, got {self.pairs_per_shard}")

    @property
    def num_shards(self) -> int:
        return -(-self.num_pairs // self.pairs_per_shard)

    def shard_pairs(self, shard_index: int) -> range:
        start = shard_index * self.pairs_per_shard
        return range(start, min(start + self.pairs_per_shard, self.num_pairs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "num_pairs": self.num_pairs,
            "pairs_per_shard": self.pairs_per_shard,
            "num_shards": self.num_shards,
            "schema_version": SCHEMA_VERSION,
            **self.arguments,
        }

    @property
    def fingerprint(self) -> str:
        return run_fingerprint(self.to_dict())


def run_fingerprint(run: dict[str, Any]) -> str:
    """Short hash of a run's recorded arguments; every shard part carries it."""
    canonical = json.dumps(run, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ShardPart:
    """The manifest part of one written shard (`.manifest/shards/<name>.json`)."""

    name: str
    domain: str
    shard_index: int
    first_index: int
    num_samples: int
    sha256: str
    size_bytes: int
    generator: str
    run_fingerprint: str

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_file(cls, path: Path) -> ShardPart:
        return cls(**json.loads(path.read_bytes()))


def parse_shard_range(text: str, num_shards: int) -> range:
    """'A:B' -> shards A..B-1, checked against the run's shard count."""
    try:
        a_text, b_text = text.split(":")
        a, b = int(a_text), int(b_text)
    except ValueError:
        raise ValueError(f"--shard-range {text!r} must look like A:B (shards A..B-1)") from None
    if not 0 <= a < b <= num_shards:
        raise ValueError(
            f"--shard-range {text!r} is outside 0:{num_shards} (this run has {num_shards} "
            "shards); use A:B with 0 <= A < B <= num_shards"
        )
    return range(a, b)


def tar_bytes(samples: Sequence[PairSample]) -> bytes:
    """A deterministic uncompressed tar of the samples' members, in key then suffix order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in sorted(samples, key=lambda s: s.key):
            for suffix, payload in sorted(sample.members().items()):
                info = tarfile.TarInfo(f"{sample.key}.{suffix}")
                info.size = len(payload)
                info.mtime = _TAR_MTIME
                info.mode = _TAR_MODE
                info.uid = info.gid = 0
                info.uname = info.gname = _TAR_OWNER
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace (never a partial file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(directory: Path, name: str) -> None:
    """Temp files a killed writer of `name` left behind."""
    for stale in directory.glob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)


def complete_part(out_dir: Path, name: str, fingerprint: str) -> ShardPart | None:
    """The shard's part if the shard is complete (part present, run and checksum match)."""
    part_path = out_dir / PARTS_DIR / f"{name}.json"
    shard_path = out_dir / name
    if not part_path.is_file() or not shard_path.is_file():
        return None
    part = ShardPart.from_file(part_path)
    if part.run_fingerprint != fingerprint or shard_path.stat().st_size != part.size_bytes:
        return None
    data = shard_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != part.sha256:
        return None
    return part


def build_shard(run: RunSpec, shard_index: int, source: PairSource) -> tuple[bytes, str]:
    """Make the shard's pairs and tar them; returns (tar bytes, generator version)."""
    samples = []
    generators = set()
    for index in run.shard_pairs(shard_index):
        sample = source(index)
        if not isinstance(sample, PairSample):
            raise TypeError(f"pair source returned {type(sample).__name__}, not PairSample")
        if sample.truth.domain != run.domain:
            raise ValueError(
                f"pair {index} has truth domain {sample.truth.domain!r}, run is {run.domain!r}"
            )
        generators.add(sample.truth.generator)
        samples.append(dataclasses.replace(sample, key=sample_key(run.domain, index)))
    if len(generators) != 1:
        raise ValueError(f"shard {shard_index} mixes generator versions {sorted(generators)}")
    return tar_bytes(samples), generators.pop()


def write_one_shard(
    out_dir: Path, run: RunSpec, shard_index: int, source: PairSource
) -> tuple[ShardPart, bool]:
    """Write shard `shard_index` unless complete; returns (its part, whether it was written)."""
    name = shard_name(run.domain, shard_index)
    part = complete_part(out_dir, name, run.fingerprint)
    if part is not None:
        return part, False
    remove_stale_temps(out_dir, name)
    (out_dir / PARTS_DIR / f"{name}.json").unlink(missing_ok=True)
    data, generator = build_shard(run, shard_index, source)
    write_atomic(out_dir / name, data)
    pairs = run.shard_pairs(shard_index)
    part = ShardPart(
        name=name,
        domain=run.domain,
        shard_index=shard_index,
        first_index=pairs.start,
        num_samples=len(pairs),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        generator=generator,
        run_fingerprint=run.fingerprint,
    )
    write_atomic(out_dir / PARTS_DIR / f"{name}.json", part.to_json())
    return part, True


def prepare_out_dir(out_dir: Path, run: RunSpec) -> None:
    """Create the folder and record the run; refuse a folder holding a different run."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} exists and is a file; give a folder path")
    (out_dir / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    run_path = out_dir / RUNS_DIR / f"{run.domain}.json"
    wanted = run.to_dict()
    if run_path.is_file():
        existing = json.loads(run_path.read_bytes())
        if existing != wanted:
            diffs = sorted(
                k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k)
            )
            detail = ", ".join(f"{k}: {existing.get(k)!r} -> {wanted.get(k)!r}" for k in diffs)
            raise ValueError(
                f"{str(out_dir)!r} already holds a {run.domain} run with other arguments "
                f"({detail}); use a fresh --out folder or delete the old one"
            )
        return
    write_atomic(run_path, json.dumps(wanted, sort_keys=True, indent=1).encode() + b"\n")


# Worker-process globals: the source is sent once per worker, not once per shard.
_WORKER: dict[str, Any] = {}


def _init_worker(out_dir: Path, run: RunSpec, source: PairSource) -> None:
    _WORKER.update(out_dir=out_dir, run=run, source=source)


def _worker_write(shard_index: int) -> tuple[ShardPart, bool]:
    return write_one_shard(_WORKER["out_dir"], _WORKER["run"], shard_index, _WORKER["source"])


@dataclass(frozen=True, slots=True)
class WriteReport:
    parts: tuple[ShardPart, ...]
    num_written: int
    num_skipped: int


def write_shards(
    out_dir: str | Path,
    run: RunSpec,
    source: PairSource,
    *,
    shard_range: range | None = None,
    workers: int = 1,
    progress: bool = True,
) -> WriteReport:
    """Write the run's shards in `shard_range` (default: all) with `workers` processes.

    `source` must be picklable when workers > 1 (a module-level function or a frozen
    dataclass instance); workers use the "spawn" start method so generators with threads
    (matplotlib, BLAS) are safe.
    """
    out_dir = Path(out_dir)
    if workers <= 0:
        raise ValueError(f"workers must be >= 1, got {workers}")
    shards = range(run.num_shards) if shard_range is None else shard_range
    prepare_out_dir(out_dir, run)
    bar = tqdm(
        total=sum(len(run.shard_pairs(s)) for s in shards),
        unit="pair",
        desc=f"{run.domain} shards {shards.start}:{shards.stop}",
        disable=not progress,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
    parts: list[ShardPart] = []
    written = 0
    with bar:
        if workers == 1 or len(shards) == 1:
            results = (write_one_shard(out_dir, run, s, source) for s in shards)
            for part, was_written in results:
                parts.append(part)
                written += was_written
                bar.update(part.num_samples)
        else:
            context = mp.get_context("spawn")
            num_procs = min(workers, len(shards))
            with context.Pool(num_procs, _init_worker, (out_dir, run, source)) as pool:
                for part, was_written in pool.imap_unordered(_worker_write, shards):
                    parts.append(part)
                    written += was_written
                    bar.update(part.num_samples)
    parts.sort(key=lambda p: p.shard_index)
    return WriteReport(parts=tuple(parts), num_written=written, num_skipped=len(parts) - written)
