"""Every recipe builds and finalizes offline, without a GPU, at its own launch shape."""

import subprocess
import sys

import pytest

from recipes import RECIPES, get_recipe
from vzero_nemo.cli import build_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_builds_and_finalizes(name):
    recipe = get_recipe(name)
    world = recipe.launch.world_size
    cfg = recipe.finalize(world)
    assert cfg.recipe == name
    par = cfg.parallel
    assert (
        par.tensor_model_parallel_size * par.pipeline_model_parallel_size * (par.data_parallel_size)
        == world
    )
    assert cfg.data.games_per_iteration % par.data_parallel_size == 0


def test_launch_shape_is_overridable_and_sizes_the_dry_run(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = build_config("qwen25vl_72b_8n8g", ["launch.nodes=16"], "launch")
    assert (cfg.world_size, cfg.parallel.data_parallel_size) == (128, 4)
    monkeypatch.setenv("WORLD_SIZE", "32")  # a launcher's world size wins
    assert build_config("qwen25vl_72b_8n8g", [], "launch").parallel.data_parallel_size == 1


def test_paper_run_shape_in_7b_recipe():
    cfg = get_recipe("qwen25vl_7b_1n8g").finalize(8)
    assert (cfg.game.num_players, cfg.game.num_spies, cfg.game.num_clue_rounds) == (4, 1, 2)
    assert cfg.game.num_votes == 8
    assert (cfg.grpo.beta, cfg.grpo.lam, cfg.grpo.kl_coef) == (0.1, 0.1, 0.04)
    assert (cfg.train.lr, cfg.train.lr_schedule, cfg.train.iterations) == (1e-5, "cosine", 100)
    assert cfg.model.params_dtype == "bf16"


def test_unknown_recipe_suggests():
    with pytest.raises(ValueError, match="did you mean tiny_cpu"):
        get_recipe("tiny_cp")


def run_cli(*args: str, env_world: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vzero_nemo.train", *args],
        capture_output=True,
        text=True,
        env={"WORLD_SIZE": str(env_world), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_cli_dry_run_prints_resolved_config():
    out = run_cli("--recipe", "qwen25vl_72b_8n8g", "--dry-run", "train.lr=2e-6", env_world=64)
    assert out.returncode == 0, out.stderr
    assert "train.lr = 2e-06" in out.stdout
    assert "parallel.data_parallel_size = 2" in out.stdout


@pytest.mark.parametrize(
    "args, world, message",
    [
        (["--recipe", "nope"], 1, "unknown recipe 'nope'"),
        (["--recipe", "tiny_cpu", "train.itrations=3"], 1, "did you mean train.iterations"),
        (["--recipe", "qwen25vl_7b_1n8g"], 6, "not divisible by the data-parallel size 3"),
        (["--recipe", "tiny_cpu", "data.path=/nonexistent/shards"], 1, "does not exist"),
    ],
)
def test_cli_bad_input_exits_nonzero_before_work(args, world, message):
    out = run_cli(*args, env_world=world)
    assert out.returncode == 2
    assert message in out.stderr
