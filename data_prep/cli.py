"""`python -m data_prep`: write, import, finalize, verify, preview and benchmark pair shards.

    python -m data_prep generate --domain clevr --num-pairs 2000 --out runs/data/clevr --seed 0 \
        --workers 8 [--pairs-per-shard 100] [--shard-range A:B] [--opt key=value ...]
    python -m data_prep import --layout vision-zero SRC --out runs/data/real [--domain real]
    python -m data_prep finalize runs/data/clevr [--val-fraction 0.1]
    python -m data_prep verify runs/data/clevr [--workers 8]
    python -m data_prep preview runs/data/clevr --out sheet.png [--num 16]
    python -m data_prep bench [bench options]

`generate`/`import` finalize (manifest.json + energon metadata) by themselves once every shard
of every run in the folder exists; with `--shard-range` (one Slurm array task) the last task to
finish does it, or run `finalize` afterwards. Exit codes: 0 ok, 1 verify found problems,
2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from data_prep.shards import DEFAULT_PAIRS_PER_SHARD, RunSpec, parse_shard_range, write_shards
from vzero_nemo.data.schema import DOMAINS

NO_ENERGON_HELP = "skip the megatron-energon metadata (.nv-meta, .tar.idx) at finalize"


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _add_write_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder for the shards")
    parser.add_argument("--pairs-per-shard", type=int, default=DEFAULT_PAIRS_PER_SHARD)
    parser.add_argument("--shard-range", help="write only shards A..B-1 (A:B), e.g. per array task")
    parser.add_argument("--workers", type=int, default=_default_workers(), help="processes")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of shards per domain for val"
    )
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/val draw")
    parser.add_argument("--no-energon", action="store_true", help=NO_ENERGON_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="render pairs into shards")
    gen.add_argument("--domain", required=True, choices=DOMAINS)
    gen.add_argument("--num-pairs", required=True, type=int)
    gen.add_argument("--seed", required=True, type=int)
    gen.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generator option (repeatable), e.g. --opt width=320",
    )
    gen.add_argument(
        "--generators",
        default="data_prep.generators",
        help="module with GENERATORS and OPTIONS dicts",
    )
    _add_write_args(gen)

    imp = commands.add_parser("import", help="shard pre-edited pairs from a folder")
    imp.add_argument("src", type=Path, help="folder of {base}_original.png/{base}_modified.png")
    imp.add_argument("--layout", required=True, choices=("vision-zero",))
    imp.add_argument("--domain", default="real", choices=DOMAINS)
    imp.add_argument("--scenes", type=Path, help="folder of {base}.json (default: SRC)")
    imp.add_argument(
        "--allow-unmatched",
        action="store_true",
        help="import the pairs even if some files form no pair (they are listed)",
    )
    imp.add_argument(
        "--diff-threshold",
        type=int,
        default=0,
        help="channel difference above which a pixel counts as changed",
    )
    _add_write_args(imp)

    fin = commands.add_parser("finalize", help="write manifest.json and energon metadata")
    fin.add_argument("dir", type=Path)
    fin.add_argument("--val-fraction", type=float, default=0.1)
    fin.add_argument("--split-seed", type=int, default=0)
    fin.add_argument("--workers", type=int, default=_default_workers())
    fin.add_argument("--no-energon", action="store_true", help=NO_ENERGON_HELP)

    ver = commands.add_parser("verify", help="check every shard; exit 1 naming bad shards")
    ver.add_argument("dir", type=Path)
    ver.add_argument("--workers", type=int, default=_default_workers())

    pre = commands.add_parser("preview", help="contact sheet of the first pairs")
    pre.add_argument("dir", type=Path)
    pre.add_argument("--out", required=True, type=Path)
    pre.add_argument("--num", type=int, default=16)

    # `bench` hands all its arguments to data_prep.bench (see main()).
    commands.add_parser("bench", help="generator benchmarks: python -m data_prep bench --help")
    return parser


def _finalize_if_complete(out: Path, args: argparse.Namespace) -> None:
    from data_prep.finalize import finalize, missing_shards

    missing = missing_shards(out)
    if missing:
        print(
            f"{len(missing)} shards of this folder are still to be written; "
            f"finalize runs when the last one is (or: python -m data_prep finalize {out})"
        )
        return
    manifest = finalize(
        out,
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        workers=args.workers,
        energon=not args.no_energon,
    )
    print(
        f"finalized {out}: {manifest.num_pairs} pairs {manifest.counts}, "
        f"{len(manifest.train)} train / {len(manifest.val)} val shards"
    )


def _write(out: Path, run: RunSpec, source, args: argparse.Namespace) -> int:
    shard_range = parse_shard_range(args.shard_range, run.num_shards) if args.shard_range else None
    _check_split(args, run.domain, run.num_pairs)
    report = write_shards(
        out,
        run,
        source,
        shard_range=shard_range,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(
        f"{run.domain}: wrote {report.num_written} shards, {report.num_skipped} already "
        f"complete, into {out}"
    )
    _finalize_if_complete(out, args)
    return 0


def _check_write_args(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {str(args.out)!r} exists and is a file; give a folder path")
    if args.pairs_per_shard <= 0:
        raise ValueError(f"--pairs-per-shard must be > 0, got {args.pairs_per_shard}")
    if args.workers <= 0:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")


def _check_split(args: argparse.Namespace, domain: str, num_pairs: int) -> None:
    """The train/val split of the shards this run will write must be possible, checked
    before anything is written (finalize would fail only after all the work)."""
    from data_prep.finalize import num_val_shards

    num_shards = -(-num_pairs // args.pairs_per_shard)
    num_val_shards(f"--num-pairs {num_pairs} / --pairs-per-shard {args.pairs_per_shard}: "
                   f"{domain}", num_shards, args.val_fraction)  # fmt: skip


def cmd_generate(args: argparse.Namespace) -> int:
    from data_prep.sources import make_generator_source

    _check_write_args(args)
    if args.num_pairs <= 0:
        raise ValueError(f"--num-pairs must be > 0, got {args.num_pairs}")
    source, arguments = make_generator_source(args.generators, args.domain, args.seed, args.opt)
    run = RunSpec(args.domain, args.num_pairs, args.pairs_per_shard, arguments)
    return _write(args.out, run, source, args)


def cmd_import(args: argparse.Namespace) -> int:
    from data_prep.importer import VisionZeroSource, import_arguments, scan_vision_zero

    _check_write_args(args)
    scan = scan_vision_zero(args.src, args.scenes)
    if scan.unmatched:
        print(f"{len(scan.unmatched)} files form no {args.layout} pair:", file=sys.stderr)
        for name in scan.unmatched:
            print(f"  {name}", file=sys.stderr)
        if not args.allow_unmatched:
            raise ValueError("unmatched files (listed above); fix them or pass --allow-unmatched")
    if not scan.bases:
        raise ValueError(f"no {{base}}_original.png + {{base}}_modified.png pairs in {args.src}")
    source = VisionZeroSource(
        src=str(args.src),
        scenes=str(args.scenes) if args.scenes else None,
        bases=scan.bases,
        domain=args.domain,
        diff_threshold=args.diff_threshold,
    )
    run = RunSpec(args.domain, len(scan.bases), args.pairs_per_shard, import_arguments(source))
    return _write(args.out, run, source, args)


def cmd_finalize(args: argparse.Namespace) -> int:
    from data_prep.finalize import finalize

    manifest = finalize(
        args.dir,
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        workers=args.workers,
        energon=not args.no_energon,
    )
    print(
        f"finalized {args.dir}: {manifest.num_pairs} pairs {manifest.counts}, "
        f"{len(manifest.train)} train / {len(manifest.val)} val shards"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from data_prep.verify import format_report, verify_set

    report = verify_set(args.dir, workers=args.workers)
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_preview(args: argparse.Namespace) -> int:
    from data_prep.preview import make_contact_sheet
    from vzero_nemo.data.manifest import load_manifest
    from vzero_nemo.data.schema import PairSample
    from vzero_nemo.data.tario import read_shard

    if args.num <= 0:
        raise ValueError(f"--num must be > 0, got {args.num}")
    manifest = load_manifest(args.dir)
    samples: list[PairSample] = []
    for entry in manifest.shards:
        for key, members in read_shard(args.dir / entry.name, expected_sha256=entry.sha256):
            samples.append(PairSample.from_members(key, members))
        if len(samples) >= args.num:
            break
    make_contact_sheet(samples[: args.num], args.out, max_pairs=args.num)
    print(f"wrote {args.out} ({min(args.num, len(samples))} pairs)")
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "import": cmd_import,
    "finalize": cmd_finalize,
    "verify": cmd_verify,
    "preview": cmd_preview,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from data_prep.bench import main as bench_main

        return int(bench_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
