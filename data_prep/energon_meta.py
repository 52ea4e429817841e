"""megatron-energon metadata for a finalized pair set: what `energon prepare` writes, done through
energon's own API so the index format always matches the installed energon.

Writes `<name>.tar.idx` next to every shard and, in `.nv-meta/`: `index.sqlite`, `index.uuid`,
`.info.json` (sample count per shard), `split.yaml` (our manifest's train/val shard lists, given
to energon as exact-name patterns so both describe the same split) and `dataset.yaml` (sample type
`vzero_nemo.data.energon_loader.EnergonPairSample`, fields mapped from the schema's members).
Equivalent CLI, for reference: `energon prepare DIR --split-parts train:... --split-parts val:...`.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import yaml

from vzero_nemo.data.manifest import Manifest
from vzero_nemo.data.schema import MODIFIED_MEMBER, ORIGINAL_MEMBER, TRUTH_MEMBER

NV_META = ".nv-meta"
SAMPLE_TYPE_MODULE = "vzero_nemo.data.energon_loader"
SAMPLE_TYPE_CLASS = "EnergonPairSample"


def exact_names_pattern(names: tuple[str, ...]) -> str:
    """One regex matching exactly these shard names (energon braceexpands patterns, so avoid
    braces and backslashes: `[.]` for a literal dot)."""
    if not names:
        return "^$"
    stems = [n.removesuffix(".tar").replace(".", "[.]") for n in names]
    return "^(" + "|".join(stems) + ")[.]tar$"


def dataset_yaml() -> dict:
    return {
        "sample_type": {"__module__": SAMPLE_TYPE_MODULE, "__class__": SAMPLE_TYPE_CLASS},
        "field_map": {
            "original": ORIGINAL_MEMBER,
            "modified": MODIFIED_MEMBER,
            "truth": TRUTH_MEMBER,
        },
    }


def remove_energon_metadata(out_dir: Path, manifest: Manifest) -> None:
    """Delete energon metadata left from an earlier finalize (it would describe another set)."""
    meta = out_dir / NV_META
    if meta.is_dir():
        shutil.rmtree(meta)
    for entry in manifest.shards:
        (out_dir / f"{entry.name}.idx").unlink(missing_ok=True)


def write_energon_metadata(out_dir: Path, manifest: Manifest, *, workers: int = 1) -> None:
    """Index every shard of the manifest and write `.nv-meta/` for energon."""
    from megatron.energon.flavors.webdataset.base_webdataset import BaseWebdatasetFactory

    names = [s.name for s in manifest.shards]
    log = io.StringIO()
    # energon prints progress lines; keep our CLI output to our own summary.
    with contextlib.redirect_stdout(log):
        BaseWebdatasetFactory.prepare_dataset(
            out_dir,
            names,
            split_parts_patterns=[
                ("train", exact_names_pattern(manifest.train)),
                ("val", exact_names_pattern(manifest.val)),
            ],
            shuffle_seed=None,
            workers=max(1, min(workers, len(names))),
        )
    info = json.loads((out_dir / NV_META / ".info.json").read_bytes())
    expected = {s.name: s.num_samples for s in manifest.shards}
    if info.get("shard_counts") != expected:
        bad = sorted(n for n in expected if info.get("shard_counts", {}).get(n) != expected[n])
        raise ValueError(f"energon indexed other sample counts than the manifest for {bad}")
    with open(out_dir / NV_META / "dataset.yaml", "w") as f:
        yaml.safe_dump(dataset_yaml(), f, sort_keys=False)
