"""The sbatch scripts through a real Slurm: argv integrity, headers, input errors.

.venv/bin/python -m pytest -m slurm tests/slurm/test_launcher.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.slurm._cluster import REPO, SlurmCluster

pytestmark = pytest.mark.slurm

TINY = "slurm/vzero_tiny_cpu.sh"


def _logs(run_dir: Path, job_id: int) -> str:
    """Everything the job wrote: per-restart logs under the run dir, then Slurm's output."""
    texts = [p.read_text() for p in sorted((run_dir / "logs").glob(f"*-{job_id}-restart*.log"))]
    texts += [p.read_text() for p in sorted(run_dir.parent.glob(f"*-{job_id}.out"))]
    return "\n".join(texts)


def _submit(
    cluster: SlurmCluster, tmp_path: Path, script: str, *args: str, nodes: int, env=None
) -> int:
    return cluster.sbatch(
        script,
        *args,
        options=(f"--nodes={nodes}", f"--output={tmp_path}/%x-%j.out"),
        env={"VZERO_RUN_DIR": str(tmp_path / "run"), **(env or {})},
    )


def test_override_words_reach_python_verbatim(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """(a) sbatch -> batch shell -> srun -> node_launch.sh -> torchrun -> trainer: one word
    with spaces, both quote kinds, $(...) and backticks arrives unchanged and runs nothing."""
    marker1, marker2 = tmp_path / "pwned1", tmp_path / "pwned2"
    value = f"""a b "c" 'd' $(touch {marker1}) `touch {marker2}`"""
    job = _submit(slurm_cluster, tmp_path, TINY, "--dry-run", f"logging.run_name={value}", nodes=2)
    info = slurm_cluster.wait_final(job)
    logs = _logs(tmp_path / "run", job)
    assert info["JobState"] == "COMPLETED", logs
    # Printed by the trainer on both nodes (one rank per node), as repr of the exact string.
    assert logs.count(f"logging.run_name = {value!r}") == 2, logs
    assert "world_size = 2" in logs
    assert not marker1.exists() and not marker2.exists()
    # The echoed launch command is %q-quoted: the value is one shell word there too.
    launch = next(line for line in logs.splitlines() if line.startswith("+ srun "))
    assert "--nnodes=2" in launch and "--rdzv-backend=c10d" in launch


def test_production_script_resolves_its_recipe(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """slurm/vzero_7b.sh (exclusive node, 8 fake GPUs) in CPU mode with 2 processes: its CONFIG
    block reaches the trainer as overrides and the recipe's TP=2 divides the world. At DP=1
    the whole Adam state stays on each GPU, which the planner finds too big for an H100
    (the dry-run would fail, as it should): the 2-process dry-run plans for H200s."""
    data_dir, hf_dir = tmp_path / "shards", tmp_path / "hf"
    env = {
        "VZERO_DEVICE": "cpu",
        "VZERO_LAUNCH": "venv",
        "VZERO_NPROC_PER_NODE": "2",
        "VZERO_DATA_DIR": str(data_dir),
        "VZERO_HF_PATH": str(hf_dir),
    }
    job = _submit(
        slurm_cluster,
        tmp_path,
        "slurm/vzero_7b.sh",
        "--dry-run",
        "train.lr=5e-06",
        "launch.gpu=h200-141gb",
        nodes=1,
        env=env,
    )
    info = slurm_cluster.wait_final(job)
    logs = _logs(tmp_path / "run", job)
    assert info["JobState"] == "COMPLETED", logs
    for line in (
        "recipe = 'qwen25vl_7b_1n8g'",
        f"data.path = '{data_dir}'",
        f"model.hf_path = '{hf_dir}'",
        f"logging.dir = '{tmp_path / 'run'}'",
        f"checkpoint.dir = '{tmp_path / 'run' / 'checkpoints'}'",
        "parallel.tensor_model_parallel_size = 2",
        "parallel.data_parallel_size = 1",
        "world_size = 2",
        "train.lr = 5e-06",
        "layout: TP=2 PP=1 DP=1 EP=1, world size 2 on h200-141gb (launch.nodes=1 x",
    ):
        assert logs.count(line) == 2, (line, logs)
    assert info["NumNodes"] == "1" and info["TresPerNode"] == "gres:gpu:8", info


@pytest.mark.parametrize(
    ("script", "nodes", "gpus"),
    [("slurm/vzero_7b.sh", None, 8), ("slurm/vzero_32b.sh", 2, 16), ("slurm/vzero_70b.sh", 2, 16)],
)
def test_gpu_headers_are_schedulable(slurm_cluster: SlurmCluster, script: str, nodes, gpus) -> None:
    """Slurm accepts each GPU script's header (exclusive, 8 GPUs per node, --signal, --requeue);
    the 32B/70B node counts are lowered to the local cluster's 2 nodes."""
    options = ["--test-only"] + ([f"--nodes={nodes}"] if nodes else [])
    result = slurm_cluster.run("sbatch", *options, script)
    assert result.returncode == 0, result.stderr
    assert "to start at" in result.stderr, result.stderr
    header = (REPO / script).read_text()
    for directive in (
        "--ntasks-per-node=1",
        "--gpus-per-node=8",
        "--exclusive",
        "--requeue",
        "--signal=B:USR1@",
    ):
        assert f"#SBATCH {directive}" in header, (script, directive)
    # Too many nodes for this cluster is refused, not silently shrunk.
    refused = slurm_cluster.run("sbatch", "--test-only", "--nodes=3", script)
    assert refused.returncode != 0


BAD_INPUTS = {
    "unknown_recipe": ({"VZERO_RECIPE": "no_such_recipe"}, (), "unknown recipe 'no_such_recipe'"),
    "unknown_key": ({}, ("train.no_such_key=1",), "unknown config key 'train.no_such_key'"),
    "parallel_sizes": (
        {"VZERO_NPROC_PER_NODE": "2"},
        ("parallel.tensor_model_parallel_size=3",),
        "world size 2 is not divisible by TP*PP = 3*1 = 3",
    ),
    "missing_data": (
        {},
        ("data.path=/nonexistent/shards",),
        "data.path='/nonexistent/shards' is not a directory",
    ),
}


def test_bad_input_fails_fast_with_a_clear_message(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """(c) Each bad input: the job FAILS (non-zero exit), its log names the problem, and no
    training state, checkpoint or metric was written. All four jobs run at once."""
    data_dir = tmp_path / "shards"
    data_dir.mkdir()
    jobs = {}
    for name, (env, args, _) in BAD_INPUTS.items():
        case_dir = tmp_path / name
        case_dir.mkdir()
        jobs[name] = _submit(
            slurm_cluster,
            case_dir,
            TINY,
            *args,
            nodes=1,
            env={"VZERO_DATA_DIR": str(data_dir), **env},
        )
    for name, (_, _, message) in BAD_INPUTS.items():
        info = slurm_cluster.wait_final(jobs[name])
        run_dir = tmp_path / name / "run"
        logs = _logs(run_dir, jobs[name])
        assert info["JobState"] == "FAILED", (name, info, logs)
        assert info["ExitCode"] != "0:0" and info["Restarts"] == "0", (name, info)
        assert message in logs, (name, logs)
        assert not (run_dir / "run_state.json").exists(), name
        assert not (run_dir / "metrics.jsonl").exists(), name
        assert not any((run_dir / "checkpoints").glob("*")), name
    # The data path is checked by the launcher, before any node starts Python.
    assert "+ srun" not in _logs(tmp_path / "missing_data" / "run", jobs["missing_data"])
