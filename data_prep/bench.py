"""Throughput of the pair generators (pairs/s with worker processes) and of PNG decoding.

    python -m data_prep bench --num-pairs 100 --workers 2
    python -m data_prep.bench --domains clevr clevr_grid --num-pairs 200

Cases: clevr (320x240), clevr_grid (48x48, 16-px cells), chart (all types), chart_bar (bar
only), real (bundled photos), and clevr_blender (the clevr scenes rendered by Blender, when a
`blender` executable exists). Timing starts after every worker has made one pair (imports
and caches warm), and includes sending each sample back to the parent. The decode case
measures PIL decoding both PNGs of a pair to RGB arrays in one process (the shard reader's
main cost); the reader needs >= 300 pairs/s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import time

from data_prep.imaging import decode_png
from vzero_nemo.data.schema import PairSample

CASES: dict[str, tuple[str, dict]] = {
    "clevr": ("clevr", {}),
    "clevr_grid": ("clevr", {"layout": "grid", "width": 48, "height": 48, "cell_size": 16}),
    "chart": ("chart", {}),
    "chart_bar": ("chart", {"chart_types": ("bar",)}),
    "real": ("real", {}),
    "clevr_blender": ("clevr", {"backend": "blender", "blender_samples": 16}),
}
DEFAULT_CASES = ("clevr", "clevr_grid", "chart", "chart_bar", "real")


def _make(task: tuple[str, int, int, dict]) -> tuple[PairSample, float]:
    """One pair and the CPU seconds its worker spent on it."""
    from data_prep.generators import GENERATORS

    domain, seed, index, options = task
    start = _cpu_s()
    sample = GENERATORS[domain](seed, index, **options)
    return sample, _cpu_s() - start


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (Blender runs as a child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_case(
    domain: str, options: dict, num_pairs: int, workers: int, seed: int = 0
) -> tuple[float, float, list[PairSample]]:
    """(pairs per wall second, mean CPU seconds per pair, samples) with `workers` processes."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        warm = [(domain, seed, 10_000_000 + w, options) for w in range(workers)]
        pool.map(_make, warm, chunksize=1)
        tasks = [(domain, seed, i, options) for i in range(num_pairs)]
        start = time.perf_counter()
        made = pool.map(_make, tasks, chunksize=1)
        elapsed = time.perf_counter() - start
    cpu_s = sum(c for _, c in made) / num_pairs
    return num_pairs / elapsed, cpu_s, [s for s, _ in made]


def decode_rate(samples: list[PairSample], repeats: int = 3) -> tuple[float, float]:
    """(pairs per wall second, CPU seconds per pair) decoding both PNGs to RGB arrays."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for s in samples:
            decode_png(s.original_png)
            decode_png(s.modified_png)
    n = repeats * len(samples)
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


def _entry(rate: float, cpu_s: float, num_pairs: int, workers: int) -> dict:
    return {
        "pairs_per_s": rate,
        "cpu_ms_per_pair": 1000.0 * cpu_s,
        "cpu_bound_pairs_per_s": workers / max(cpu_s, 1e-9),
        "num_pairs": num_pairs,
        "workers": workers,
    }


def run_bench(
    num_pairs: int = 100,
    workers: int = 2,
    cases: tuple[str, ...] = DEFAULT_CASES,
    blender_pairs: int = 2,
    seed: int = 0,
) -> dict[str, dict]:
    """Measure each case; returns {case: {"pairs_per_s", "cpu_ms_per_pair", "cpu_bound_pairs_per_s",
    "num_pairs", "workers"}}.

    pairs_per_s is wall-clock; cpu_bound_pairs_per_s = workers / CPU time per pair, the rate
    on otherwise idle cores (the two differ when other work shares the machine). Also
    "decode_<case>" entries (one process) for every generated case, and, when blender is on
    PATH, "clevr_blender" on the first `blender_pairs` clevr scenes.
    """
    if num_pairs < 1 or workers < 1:
        raise ValueError(f"num_pairs={num_pairs} and workers={workers} must be >= 1")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown bench cases {unknown}; choose from {sorted(CASES)}")
    results: dict[str, dict] = {}
    for case in cases:
        domain, options = CASES[case]
        n = blender_pairs if case == "clevr_blender" else num_pairs
        if case == "clevr_blender" and shutil.which("blender") is None:
            results[case] = {"pairs_per_s": None, "note": "no blender executable on PATH"}
            continue
        rate, cpu_s, samples = time_case(domain, options, n, workers, seed)
        results[case] = _entry(rate, cpu_s, n, workers)
        decode, decode_cpu_s = decode_rate(samples)
        results[f"decode_{case}"] = _entry(decode, decode_cpu_s, len(samples), 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--num-pairs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--domains", nargs="+", default=None, choices=sorted(CASES),
                        help="bench cases (default: all, with clevr_blender when blender exists)")  # fmt: skip
    parser.add_argument("--blender-pairs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cases = tuple(args.domains) if args.domains else (*DEFAULT_CASES, "clevr_blender")
    results = run_bench(args.num_pairs, args.workers, cases, args.blender_pairs, args.seed)
    print(
        f"{'case':<22}{'pairs/s':>9}{'cpu ms/pair':>13}{'cpu-bound/s':>13}{'pairs':>7}{'workers':>9}"
    )
    for case, r in results.items():
        if r["pairs_per_s"] is None:
            print(f"{case:<22}{'absent':>9}  {r['note']}")
            continue
        print(
            f"{case:<22}{r['pairs_per_s']:>9.1f}{r['cpu_ms_per_pair']:>13.1f}"
            f"{r['cpu_bound_pairs_per_s']:>13.1f}{r['num_pairs']:>7}{r['workers']:>9}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
