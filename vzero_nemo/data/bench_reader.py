"""Measure PairReader throughput (pairs/s, both images decoded) on one CPU core.

    python -m vzero_nemo.data.bench_reader runs/data/clevr            # an existing set
    python -m vzero_nemo.data.bench_reader --domain clevr --num-pairs 400
        # no folder: writes a temporary set with data_prep's generators first (not timed)

The process pins itself to one core (sched_setaffinity) so the number is per core; a data
loader with W worker processes reads about W times as fast. Reading includes the sha256 check,
tar parsing, shuffling and PNG decoding to PIL RGB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from vzero_nemo.data.reader import PairReader


def _make_set(
    directory: Path, domain: str, num_pairs: int, generators: str, opts: list[str]
) -> None:
    from data_prep.shards import RunSpec, write_shards
    from data_prep.sources import make_generator_source

    source, arguments = make_generator_source(generators, domain, 0, opts)
    run = RunSpec(domain, num_pairs, 100, arguments)
    write_shards(directory, run, source, workers=max(1, len(os.sched_getaffinity(0))))
    from data_prep.finalize import finalize

    finalize(directory, val_fraction=0.0, energon=False)


def measure(path: Path, *, decode: str, max_pairs: int | None) -> dict:
    reader = PairReader(path, split="all", decode=decode, num_epochs=1)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    count = 0
    size = None
    for pair in reader:
        size = pair.original.size if decode == "pil" else pair.original.shape
        count += 1
        if max_pairs is not None and count >= max_pairs:
            break
    wall = time.perf_counter() - start_wall
    cpu = time.process_time() - start_cpu
    return {
        "pairs": count,
        "image_size": list(size) if size is not None else None,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "pairs_per_s": round(count / wall, 1),
        "pairs_per_cpu_s": round(count / max(cpu, 1e-9), 1),
        "decode": decode,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="finalized set folder (default: a temp set)")
    parser.add_argument("--domain", default="clevr", help="domain of the temp set")
    parser.add_argument("--num-pairs", type=int, default=400, help="pairs in the temp set")
    parser.add_argument("--generators", default="data_prep.generators")
    parser.add_argument("--opt", action="append", default=[], help="generator key=value")
    parser.add_argument("--decode", default="pil", choices=("pil", "numpy"))
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--cores", type=int, default=1, help="pin to this many cores")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_reader_") as tmp:
        path = Path(args.path) if args.path else Path(tmp)
        if not args.path:
            _make_set(path, args.domain, args.num_pairs, args.generators, args.opt)
        cores = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cores)
        result = measure(path, decode=args.decode, max_pairs=args.max_pairs)
        result["cores"] = len(cores)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
