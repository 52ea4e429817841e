"""Check a finalized pair set end to end; name every bad shard.

    python -m data_prep verify runs/data/clevr --workers 4     # exit 0: all good, 1: problems

Per shard: the file exists, its sha256 and sample count match manifest.json, the tar parses,
every sample has the three schema members, keys are unique across the set, both PNGs decode
(libspng and Pillow agree), have the same size and differ, the truth JSON parses, its domain
and generator match the manifest, it lists at least one change and every change box lies inside
the image. For the set: no stray .tar outside the manifest, and the energon metadata
(`.nv-meta/.info.json`, `split.yaml`) agrees with the manifest (when it was written).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vzero_nemo.data.manifest import Manifest, ShardEntry, load_manifest
from vzero_nemo.data.schema import MODIFIED_MEMBER, ORIGINAL_MEMBER, TRUTH_MEMBER, Truth
from vzero_nemo.data.tario import CorruptShardError, decode_png_array, decode_png_pil, read_shard

MAX_PROBLEMS_PER_SHARD = 5


@dataclass(slots=True)
class ShardResult:
    name: str
    num_samples: int = 0
    keys: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_pair(key: str, members: dict[str, bytes], entry: ShardEntry) -> list[str]:
    """Problems of one sample (empty list: fine)."""
    try:
        original = decode_png_array(members[ORIGINAL_MEMBER])
        modified = decode_png_array(members[MODIFIED_MEMBER])
    except ValueError as e:
        return [f"{key}: image does not decode ({e})"]
    if not np.array_equal(original, np.asarray(decode_png_pil(members[ORIGINAL_MEMBER]))):
        return [f"{key}: libspng and Pillow decode the original differently"]
    if original.shape != modified.shape:
        return [f"{key}: image sizes differ {original.shape[:2]} vs {modified.shape[:2]}"]
    problems = []
    if np.array_equal(original, modified):
        problems.append(f"{key}: original and modified images are identical")
    try:
        truth = Truth.from_json(members[TRUTH_MEMBER])
    except (ValueError, KeyError, TypeError) as e:
        return problems + [f"{key}: truth does not parse ({type(e).__name__}: {e})"]
    if truth.domain != entry.domain:
        problems.append(f"{key}: truth domain {truth.domain!r} != manifest {entry.domain!r}")
    if truth.generator != entry.generator:
        problems.append(f"{key}: generator {truth.generator!r} != manifest {entry.generator!r}")
    if not truth.changes:
        problems.append(f"{key}: truth lists no changes")
    height, width = original.shape[:2]
    for change in truth.changes:
        x0, y0, x1, y1 = change.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            problems.append(f"{key}: change box {list(change.box)} not inside {width}x{height}")
    return problems


def verify_shard(directory: Path, entry: ShardEntry) -> ShardResult:
    result = ShardResult(entry.name)
    try:
        samples = read_shard(
            directory / entry.name,
            expected_sha256=entry.sha256,
            expected_samples=entry.num_samples,
        )
    except CorruptShardError as e:
        result.problems.append(e.reason)
        return result
    result.num_samples = len(samples)
    for key, members in samples:
        result.keys.append(key)
        result.problems += check_pair(key, members, entry)
    return result


def _verify_job(job: tuple[Path, ShardEntry]) -> ShardResult:
    return verify_shard(*job)


def check_set_metadata(directory: Path, manifest: Manifest) -> list[str]:
    """Set-level problems: stray shards, energon metadata out of step with the manifest."""
    problems = []
    listed = {s.name for s in manifest.shards}
    stray = sorted(p.name for p in directory.glob("*.tar") if p.name not in listed)
    if stray:
        problems.append(f"shards not in manifest.json: {stray} (rerun finalize)")
    if set(manifest.train) | set(manifest.val) != listed or set(manifest.train) & set(manifest.val):
        problems.append("manifest splits do not partition its shards")
    info_path = directory / ".nv-meta" / ".info.json"
    if not manifest.energon_metadata:
        if info_path.parent.exists():
            problems.append("stale .nv-meta: manifest was finalized without energon metadata")
        return problems
    if not info_path.is_file():
        problems.append("energon metadata missing (.nv-meta/.info.json); rerun finalize")
        return problems
    counts = json.loads(info_path.read_bytes()).get("shard_counts", {})
    if counts != {s.name: s.num_samples for s in manifest.shards}:
        problems.append("energon .nv-meta/.info.json counts differ from manifest.json")
    split_path = directory / ".nv-meta" / "split.yaml"
    if not split_path.is_file():
        problems.append("energon split missing (.nv-meta/split.yaml); rerun finalize")
    return problems


@dataclass(slots=True)
class VerifyReport:
    num_shards: int
    num_pairs: int
    bad_shards: dict[str, list[str]]
    set_problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.bad_shards and not self.set_problems


def verify_set(directory: str | Path, *, workers: int = 1) -> VerifyReport:
    directory = Path(directory)
    manifest = load_manifest(directory)
    jobs = [(directory, entry) for entry in manifest.shards]
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            results = pool.map(_verify_job, jobs, chunksize=1)
    else:
        results = [_verify_job(job) for job in jobs]
    seen: dict[str, str] = {}
    for result in results:
        for key in result.keys:
            if key in seen:
                result.problems.append(f"{key}: duplicate key, also in {seen[key]}")
            seen.setdefault(key, result.name)
    bad = {r.name: r.problems for r in results if r.problems}
    return VerifyReport(
        num_shards=len(results),
        num_pairs=sum(r.num_samples for r in results),
        bad_shards=bad,
        set_problems=check_set_metadata(directory, manifest),
    )


def format_report(report: VerifyReport) -> str:
    lines = []
    for name, problems in sorted(report.bad_shards.items()):
        shown = problems[:MAX_PROBLEMS_PER_SHARD]
        more = len(problems) - len(shown)
        lines.append(f"BAD {name}: " + "; ".join(shown) + (f"; +{more} more" if more else ""))
    lines += [f"BAD set: {p}" for p in report.set_problems]
    status = "OK" if report.ok else f"FAILED ({len(report.bad_shards)} bad shards)"
    lines.append(f"{status}: {report.num_shards} shards, {report.num_pairs} pairs read")
    return "\n".join(lines)
