"""Real widths: a random Qwen2.5-VL at the 7B and 72B widths through our import and export.

For each width, `python -m vzero_nemo.models.random_checkpoint` writes a randomly initialised
checkpoint (published hidden size, heads, GQA groups, FFN, 152064-row vocabulary, M-RoPE
(16, 24, 24), 14-px patches / 28-px merged tokens / 112-px windows; fewer language layers and
a 2-block vision tower with one windowed and one full-attention block) as bf16 sharded
safetensors with an index and a Qwen2.5-VL-style tokenizer. Then (`_widths_worker.py`):

1. transformers' own `Qwen2_5_VLForConditionalGeneration` computes the logits of an image +
   text batch (rendered with the checkpoint's chat template), and again with another
   attention kernel (its own bf16 noise floor) and with deliberate bugs (controls);
2. each layout imports the checkpoint with `model.size=auto` and compares its logits with
   transformers' on real tokens, measures the import's peak RSS, exports, and compares the
   export with the original tensor by tensor;
3. transformers loads one export and reproduces its original logits bit for bit.

Tolerance: bf16 forwards differ by rounding, so ours must stay within 2x the distance
between transformers' two attention kernels (max and mean |delta logits|), while the
controls must sit 10x above it. 7B width: language depth 2, TP=1, TP=2 and PP=2, each exported.
72B width (hidden 8192, 64 heads / 8 KV heads, FFN 29568): language depth 1 (3.5B parameters,
6.9 GB), TP=1 and TP=2, exported from TP=1 (see RUNS); it runs only with VZERO_WIDTHS_72B=1:
it needs ~11 GiB of host memory (numbers in docs/results/widths.md).

    .venv/bin/python -m pytest -m widths tests/widths -q -s
    VZERO_WIDTHS_72B=1 VZERO_RESULTS_DIR=docs/results .venv/bin/python -m pytest -m widths -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.widths, pytest.mark.timeout(3600)]

COMMAND = (
    "VZERO_WIDTHS_72B=1 VZERO_RESULTS_DIR=docs/results .venv/bin/python -m pytest -m widths "
    "tests/widths -q -s"
)
WORKER = Path(__file__).with_name("_widths_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
RUNS = {
    "7b": {
        "num_layers": 2,
        "layouts": ["tp1", "tp2", "pp2"],
        "export": ["tp1", "tp2", "pp2"],
        "keep": "tp2",
    },  # fmt: skip
    # Bridge's export all-gathers every tensor on every rank (the shard list + the concatenated
    # tensor: 2 x 2.3 GiB per rank for the 152064 x 8192 embedding): at TP=2 the 72B width
    # would peak near 19 GiB here, so it exports from TP=1 (no gathers).
    "72b": {"num_layers": 1, "layouts": ["tp1", "tp2"], "export": ["tp1"], "keep": "tp1"},
}
TENSORS = {2: 57, 1: 45}
"""HF tensors of a checkpoint with this many language layers (2 vision blocks)."""
NEEDED_72B_GIB = 12
"""Host memory the 72B width peaks at (the TP=1 import: 6.5 GiB of parameters, a 2.3 GiB
embedding read whole, 1 GiB of libraries), with margin."""
NOISE_FACTOR = 2.0
"""Ours vs transformers may differ by at most this multiple of transformers' own noise."""
BUG_FACTOR = 10.0
"""A simulated bug must move the logits by at least this multiple of that noise."""
SLACK_GIB = 0.125
"""Import peak allowance for communication and allocator buffers."""


def _available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _run(cmd: list[str], log: Path, timeout_s: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s
        )
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")


def _results(out: Path) -> dict:
    results: dict = {"layouts": {}}
    for path in sorted(out.glob("result_*_rank*.json")):
        r = json.loads(path.read_text())
        results["layouts"].setdefault(r["layout"], []).append(r)
    results["reference"] = json.loads((out / "result_reference.json").read_text())
    results["check_export"] = json.loads((out / "result_check_export.json").read_text())
    return results


@pytest.fixture(scope="module", params=sorted(RUNS))
def width_run(request, tmp_path_factory, launch) -> tuple[str, dict]:
    width = request.param
    if width == "72b":
        if os.environ.get("VZERO_WIDTHS_72B") != "1":
            pytest.skip("72B width needs ~11 GiB of host memory: set VZERO_WIDTHS_72B=1")
        if _available_gib() < NEEDED_72B_GIB:
            pytest.skip(f"72B width needs {NEEDED_72B_GIB} GiB free, {_available_gib():.1f} free")
    run = RUNS[width]
    out = tmp_path_factory.mktemp(f"widths_{width}")
    hf = out / "hf"
    _run(
        [sys.executable, "-m", "vzero_nemo.models.random_checkpoint", "--width", width]
        + ["--num-layers", str(run["num_layers"]), "--vision-depth", "2", "--out", str(hf)],
        out / "random_checkpoint.log",
        timeout_s=1200,
    )
    args = ["--hf", str(hf), "--out", str(out)]
    one_proc = [x for x in run["layouts"] if x == "tp1"]
    two_proc = [x for x in run["layouts"] if x != "tp1"]
    keep = run["keep"]  # the export transformers loads
    common = [*args, "--export", ",".join(run["export"]), "--keep-export", keep]
    launch(WORKER, 1, ["reference", *common, "--layouts", ",".join(one_proc)],
           out / "logs_reference", timeout_s=1800)  # fmt: skip
    if two_proc:
        launch(WORKER, 2, ["layouts", *common, "--layouts", ",".join(two_proc)],
               out / "logs_layouts", timeout_s=1800)  # fmt: skip

    launch(WORKER, 1, ["check-export", "--hf", str(out / f"export_{keep}"), "--out", str(out)],
           out / "logs_check", timeout_s=900)  # fmt: skip
    results = _results(out)
    table = _table(width, run, results)
    print("\n" + table)
    if os.environ.get("VZERO_RESULTS_DIR"):
        Path(os.environ["VZERO_RESULTS_DIR"], f"widths_{width}.md").write_text(table + "\n")
    return width, results


def _noise(results: dict) -> dict[str, float]:
    return results["reference"]["controls"]["eager_attention"]


def _logit_ranks(results: dict, layout: str) -> list[dict]:
    return [r for r in results["layouts"][layout] if "max_abs_diff" in r]


def _table(width: str, run: dict, results: dict) -> str:
    ref, noise = results["reference"], _noise(results)
    lines = [
        f"### {width} width, {run['num_layers']} language layer(s), 2 vision blocks",
        "",
        f"Made by `{COMMAND}` (bf16 checkpoint and models, 2 CPU cores).",
        "",
        f"max |logit| {ref['max_abs_logit']:.2f}; transformers sdpa vs eager (noise): "
        f"max {noise['max_abs_diff']:.4f}, mean {noise['mean_abs_diff']:.4f}",
        "",
        "| layout | max abs d logits | mean abs d logits | argmax agree | tensors compared "
        "| bit-identical after round trip | import peak - baseline (GiB) "
        "| params per rank (GiB) | largest shard (GiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layout in run["layouts"]:
        ranks = results["layouts"][layout]
        logit_ranks = _logit_ranks(results, layout)
        export = next((r["export"] for r in ranks if r.get("export")), None)
        peaks = "/".join(f"{r['import_peak_gib'] - r['rss_baseline_gib']:.2f}" for r in ranks)
        params = "/".join(f"{r['param_gib']:.2f}" for r in ranks)
        lines.append(
            f"| {layout} | {max(r['max_abs_diff'] for r in logit_ranks):.4f} "
            f"| {max(r['mean_abs_diff'] for r in logit_ranks):.4f} "
            f"| {min(r['argmax_agree'] for r in logit_ranks):.3f} "
            f"| {export['compared'] if export else '-'} "
            f"| {not export['mismatched'] if export else '- (not exported)'} | {peaks} | {params} "
            f"| {ranks[0]['checkpoint']['largest_shard']:.2f} |"
        )
    lines += ["", "| simulated bug (in transformers) | max abs d logits | mean abs d logits |"]
    lines.append("|---|---|---|")
    for name, c in ref["controls"].items():
        if name != "eager_attention":
            lines.append(f"| {name} | {c['max_abs_diff']:.4f} | {c['mean_abs_diff']:.4f} |")
    check = results["check_export"]
    lines += ["", f"export loads with from_pretrained, same logits: {check['logits_identical']}"]
    return "\n".join(lines)


def test_logits_match_transformers(width_run):
    width, results = width_run
    noise = _noise(results)
    for layout in RUNS[width]["layouts"]:
        ranks = _logit_ranks(results, layout)
        tp = 2 if layout == "tp2" else 1
        assert len(ranks) == tp  # every vocabulary slice compared
        assert sorted(r["vocab_slice"][0] for r in ranks) == [i * 152064 // tp for i in range(tp)]
        for r in ranks:
            assert r["tokens"] > 150 and r["max_abs_logit"] > 3.0  # a real, non-flat comparison
            assert r["max_abs_diff"] <= NOISE_FACTOR * noise["max_abs_diff"], (layout, r)
            assert r["mean_abs_diff"] <= NOISE_FACTOR * noise["mean_abs_diff"], (layout, r)


def test_simulated_bugs_exceed_the_tolerance(width_run):
    """The test can tell a conversion bug from bf16 rounding: image tokens on text RoPE
    positions, or windowed / full-attention blocks swapped, move the logits far more."""
    _, results = width_run
    noise, controls = _noise(results), results["reference"]["controls"]
    for name in ("one_d_positions", "window_and_full_blocks_swapped"):
        assert controls[name]["max_abs_diff"] >= BUG_FACTOR * noise["max_abs_diff"], name


def test_round_trip_is_bit_identical(width_run):
    width, results = width_run
    for layout in RUNS[width]["export"]:
        export = next(r["export"] for r in results["layouts"][layout] if r.get("export"))
        assert export["compared"] == TENSORS[RUNS[width]["num_layers"]], layout
        assert export["mismatched"] == [] and export["index"], layout
        assert export["only_in_original"] == export["only_in_export"] == [], layout


def test_export_loads_in_transformers(width_run):
    _, results = width_run
    check = results["check_export"]
    assert check["missing_keys"] == check["unexpected_keys"] == check["mismatched_keys"] == []
    assert check["logits_identical"]


def test_import_memory_is_bounded(width_run):
    """Each rank's import grows its RSS by at most its own parameters plus one shard (the
    tensor being split is read whole on TP rank 0) plus, under TP, that shard's slice (rank 0
    receives its own slice of the scatter into a fresh buffer): never the checkpoint."""
    width, results = width_run
    for layout in RUNS[width]["layouts"]:
        tp = 2 if layout == "tp2" else 1
        for r in results["layouts"][layout]:
            grown = r["import_peak_gib"] - r["rss_baseline_gib"]
            shard = r["checkpoint"]["largest_shard"]
            bound = r["param_gib"] + shard + (shard / tp if tp > 1 else 0.0) + SLACK_GIB
            assert grown <= bound, (layout, r["rank"], grown, bound)
            if tp > 1:
                assert grown < r["checkpoint"]["total"], (layout, r["rank"])
