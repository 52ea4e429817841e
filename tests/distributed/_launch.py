"""Launch N local worker processes with the environment torchrun gives (gloo, loopback).

    from tests.distributed._launch import launch_workers
    launch_workers(Path("worker.py"), nproc=2, args=["--out", "/tmp/x"], timeout_s=180)

Each worker gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
MASTER_PORT (a free loopback port) and OMP_NUM_THREADS=1, so `initialize_parallel` joins
through env:// exactly as under torchrun. Every worker runs in its own session; when one
fails or the deadline passes, the others are killed by their process-group id, so no
process outlives the launch. A failure raises `WorkerError` with the tail of every log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerError(RuntimeError):
    """A worker exited non-zero or the launch timed out."""


@dataclass(frozen=True, slots=True)
class LaunchResult:
    wall_s: float
    logs: list[Path]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, num_chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "<no log>"
    return text[-num_chars:]


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session
            except ProcessLookupError:
                pass
    for proc in procs:
        proc.wait()


def launch_workers(
    script: Path,
    nproc: int,
    args: list[str],
    log_dir: Path,
    timeout_s: float = 300.0,
    extra_env: dict[str, str] | None = None,
) -> LaunchResult:
    """Run `python script *args` as `nproc` ranks; wait for all; raise on any failure."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs: list[subprocess.Popen] = []
    logs = [log_dir / f"rank{rank}.log" for rank in range(nproc)]
    start = time.monotonic()
    try:
        for rank in range(nproc):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(nproc),
                "LOCAL_WORLD_SIZE": str(nproc),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
                ),
                **(extra_env or {}),
            }
            with logs[rank].open("w") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, str(script), *args],
                        cwd=REPO_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = start + timeout_s
        while any(proc.poll() is None for proc in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        timed_out = any(proc.poll() is None for proc in procs)
        _kill(procs)
    codes = [proc.returncode for proc in procs]
    if timed_out or any(codes):
        reason = f"timed out after {timeout_s:.0f} s" if timed_out else f"exit codes {codes}"
        details = "\n".join(f"--- rank {r} ({logs[r]}):\n{_tail(logs[r])}" for r in range(nproc))
        raise WorkerError(f"{script.name} x{nproc} {reason}\n{details}")
    return LaunchResult(wall_s=time.monotonic() - start, logs=logs)
