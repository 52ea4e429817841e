"""The planner: parameter split, memory accounting, layouts, published layouts, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from dataclasses import replace
from pathlib import Path

import pytest

from recipes import RECIPES, get_recipe
from vzero_nemo.cli import build_config
from vzero_nemo.config import LaunchConfig
from vzero_nemo.models.sizes import num_parameters
from vzero_nemo.plan import plan_config
from vzero_nemo.plan.crosscheck import PUBLISHED, longest_fitting
from vzero_nemo.plan.devices import DEVICE_NAMES, GiB, device_spec
from vzero_nemo.plan.job import job_from_config
from vzero_nemo.plan.layouts import rank_layouts
from vzero_nemo.plan.memory import layout_errors, plan_memory, stage_params, with_layout
from vzero_nemo.plan.timing import predict_times

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
H100 = device_spec("h100-80gb")


def _job(recipe: str, *overrides: str):
    return job_from_config(build_config(recipe, list(overrides), "launch"))


def test_launch_gpu_names_are_the_device_table():
    assert typing.get_args(typing.get_type_hints(LaunchConfig)["gpu"]) == DEVICE_NAMES


@pytest.mark.parametrize("recipe", ["tiny_cpu", "qwen25vl_72b_8n8g"])
def test_stages_hold_every_parameter_once(recipe):
    job = _job(recipe)
    one = with_layout(job, tp=1, pp=1, dp=1)
    total = num_parameters(job.model.dims, job.model.vocab_size)["total"]
    assert stage_params(one.model, one.layout, 0).total == total
    # Under PP=4 the stages partition the layers; TP=1 keeps every matrix whole.
    if job.model.dims.num_layers % 4 == 0:
        split = with_layout(job, tp=1, pp=4, dp=1)
        stages = [stage_params(split.model, split.layout, s) for s in range(4)]
        assert sum(s.total for s in stages) == total
        assert [s.layer_ranges for s in stages][0][0][0] == 0
        assert stages[-1].layer_ranges[-1][1] == job.model.dims.num_layers


def test_interleaved_stages_own_alternating_chunks():
    job = with_layout(_job("qwen25vl_72b_8n8g"), vpp=2)
    assert stage_params(job.model, job.layout, 1).layer_ranges == ((10, 20), (50, 60))


def test_layout_errors_name_the_divisibility():
    job = _job("tiny_cpu")
    errors = layout_errors(job.model, with_layout(job, tp=4).layout)
    assert any("num_query_groups=2 is not divisible by TP=4" in e for e in errors)
    with pytest.raises(ValueError, match="cannot be laid out"):
        plan_config(build_config("tiny_cpu", ["parallel.tensor_model_parallel_size=4"], 4))


def test_memory_options_move_the_right_component():
    job = _job("qwen25vl_72b_8n8g")
    base = plan_memory(job)
    flat = plan_memory(with_layout(job, distributed_optimizer=False))
    assert flat.static["optimizer"] == base.static["optimizer"] * job.layout.dp
    resident = plan_memory(with_layout(job, offload_reference=False))
    assert resident.static["reference (resident)"] == resident.static["weights"]
    assert "reference weights (on device)" in base.phases["reference"]
    act = {
        mode: plan_memory(with_layout(job, recompute=mode)).phases["training"]["activations"]
        for mode in ("none", "selective", "full")
    }
    assert act["none"] >= act["selective"] > act["full"]
    # Local (CPU) kernels keep the softmax: selective recompute must drop it there.
    tiny = _job("tiny_cpu")
    local = {
        m: plan_memory(with_layout(tiny, recompute=m)).phases["training"]["activations"]
        for m in ("none", "selective")
    }
    assert local["none"] > local["selective"]


def test_shipped_recipes_fit_and_docstrings_quote_the_planner():
    for name in RECIPES:
        cfg = build_config(name, [], "launch")
        plan = plan_config(cfg)
        assert plan.fits, name
        quoted = re.search(r"planner peak ([\d.]+) GiB", RECIPES[name].__doc__ or "")
        if quoted:
            assert float(quoted.group(1)) == round(plan.memory.peak_bytes / GiB, 1), name


def test_recipe_that_does_not_fit_fails_dry_run_with_the_numbers():
    out = subprocess.run(
        [sys.executable, "-m", "vzero_nemo.train", "--recipe", "qwen25vl_7b_1n8g", "--dry-run",
         "train.micro_batch_size=4"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 2
    assert "does not fit: the planner's peak is 120.2 GiB" in out.stderr
    assert "train.micro_batch_size (now 4)" in out.stderr


def test_ranking_puts_fitting_layouts_first_and_predicts_a_split():
    job = _job("qwen25vl_72b_8n8g")
    ranked = rank_layouts(job, H100, gpus=64, gpus_per_node=8, capacity_bytes=H100.usable_bytes)
    fits = [r.fits for r in ranked]
    assert fits[0] and fits == sorted(fits, reverse=True)
    assert all(r.job.layout.gpus == 64 for r in ranked)
    times = [r.times.total_s for r in ranked if r.fits]
    assert times == sorted(times)
    t = predict_times(job, H100)
    full = predict_times(with_layout(job, recompute="none"), H100)
    assert t.training_s == pytest.approx(full.training_s * 4 / 3)
    assert t.rollout_s > 0 and t.reference_s > 0


def test_published_layouts():
    """NeMo-RL's 70B GRPO layout fits an H100; Megatron-Bridge's Qwen2.5-VL SFT layouts fit
    only with smaller images and sequences (their DP=1 keeps the whole Adam state per GPU)."""
    usable = H100.usable_bytes
    assert (
        plan_memory(PUBLISHED["NeMo-RL grpo-llama3.3-70b-4n8g (TP4 PP8 SP)"](4096)).peak_bytes
        <= usable
    )
    bridge_7b = plan_memory(PUBLISHED["Megatron-Bridge qwen25_vl_7b_sft_2gpu (TP2)"](128))
    assert sum(bridge_7b.static.values()) > 0.95 * usable

    def small_images(make):  # 256-token images
        return lambda s: replace(make(s), work=replace(make(s).work, image_patches=1024))

    for name, tokens in (("32b_sft_16gpu (TP8 PP2)", 2048), ("72b_sft_32gpu (TP8 PP4)", 512)):
        make = PUBLISHED[f"Megatron-Bridge qwen25_vl_{name}"]
        assert longest_fitting(small_images(make), usable) >= tokens, name


def test_plan_cli_by_size_and_bad_device():
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "vzero_nemo.plan", *a], capture_output=True, text=True,
        timeout=300, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    out = run("--size", "72b", "--nodes", "8", "--gpus-per-node", "8", "--gpu", "h100-80gb")
    assert out.returncode == 0, out.stderr
    assert "layout: TP=8 PP=4 DP=2 EP=1, world size 64 on h100-80gb" in out.stdout
    assert re.search(r"layouts of 64 GPUs \(\d+ of \d+ fit\)", out.stdout)
    bad = run("--recipe", "qwen25vl_72b_8n8g", "launch.gpu=h300")
    assert bad.returncode == 2 and "launch.gpu='h300' is not allowed" in bad.stderr


def test_every_readme_dry_run_line_runs_as_written():
    """Each `--dry-run` command of the README, on one CPU process without WORLD_SIZE."""
    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("python -m vzero_nemo.train") and "--dry-run" in line
    ]
    covered = {re.search(r"--recipe (\S+)", line).group(1) for line in lines}
    assert covered == set(RECIPES) - {"tiny_cpu_long"}
    for line in lines:
        argv = line.split()[1:]
        out = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert out.returncode == 0, (line, out.stderr[-2000:])
        recipe = get_recipe(re.search(r"--recipe (\S+)", line).group(1))
        assert f"world size {recipe.launch.world_size}" in out.stdout
        assert "pipeline stages" in out.stdout and ": fits" in out.stdout
