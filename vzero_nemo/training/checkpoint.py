"""Checkpoints: megatron-core dist-checkpointing for weights and optimizer, JSON for the rest.

Layout of `checkpoint.dir`:

    iter_0000010/
        dist/                  megatron dist-checkpoint (model + optimizer, any TP/PP layout)
        trainer_state.json     iteration, RAE baselines, stage controller, data positions,
                               LR scheduler, counters, logger run id
        meta.json              recipe, parallel layout, model size (compatibility check)
    latest                     text file naming the newest complete iteration directory

Saving is atomic: everything is written into `iter_XXXXXXX.tmp`, renamed into place when
complete, and only then is `latest` replaced (write + rename). A process killed during a save
leaves the previous checkpoint as `latest`. Loading reads JSON and dist-checkpoint tensors only;
the one pickled file a dist-checkpoint holds (torch DCP's `.metadata`) is first checked with a
restricted unpickler that admits nothing but DCP's metadata classes and builtins.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

LATEST = "latest"


class CheckpointMismatch(ValueError):
    """A checkpoint from another recipe or an incompatible layout."""


def iteration_dir(ckpt_dir: str | Path, iteration: int) -> Path:
    return Path(ckpt_dir) / f"iter_{iteration:07d}"


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None if there is none."""
    pointer = Path(ckpt_dir) / LATEST
    if not pointer.exists():
        return None
    path = Path(ckpt_dir) / pointer.read_text().strip()
    if not (path / "trainer_state.json").exists():
        raise FileNotFoundError(
            f"{pointer} names {path.name}, which is incomplete or missing; the checkpoint "
            "directory was modified by hand"
        )
    return path


@contextlib.contextmanager
def one_intraop_thread() -> Iterator[None]:
    """Run dist-checkpointing with one intra-op (OpenMP) thread, restoring the count after.

    A save or load plans over a gloo process group, whose long-lived worker threads copy the
    pickled plans. A copy larger than ATen's grain size run in such a thread with N intra-op
    threads makes that thread start its own OpenMP team, which lives as long as the process.
    libgomp then manages more threads than there are CPUs and shortens every team's
    spin-wait to ~100 spins, so each later parallel op sleeps and wakes through futexes: on
    2 cores every self-play iteration after the first save took ~1.5x longer (2.0 -> 3.1 s,
    the same CPU seconds). A thread takes its OpenMP size from torch's setting when it first
    runs an op, so the gloo threads first used here get one thread and never start a team.
    Saving is I/O and pickling; one thread costs it nothing measurable.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _is_rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    ckpt_dir: str | Path,
    iteration: int,
    sharded_state_dict: dict[str, Any],
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int,
) -> Path:
    """Collective: every rank calls it with its own sharded state dict."""
    from megatron.core import dist_checkpointing

    final = iteration_dir(ckpt_dir, iteration)
    tmp = final.with_name(final.name + ".tmp")
    if _is_rank0():
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a save that was killed
        (tmp / "dist").mkdir(parents=True)
    _barrier()
    with one_intraop_thread():
        dist_checkpointing.save(sharded_state_dict, str(tmp / "dist"))
    _barrier()
    if _is_rank0():
        _atomic_write_text(tmp / "trainer_state.json", json.dumps(trainer_state, indent=1))
        _atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _atomic_write_text(Path(ckpt_dir) / LATEST, final.name + "\n")
        _prune(Path(ckpt_dir), keep_last)
    _barrier()
    return final


def _prune(ckpt_dir: Path, keep_last: int) -> None:
    done = sorted(p for p in ckpt_dir.glob("iter_???????") if p.is_dir())
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def check_meta(path: Path, expected: dict[str, Any], reshardable: tuple[str, ...]) -> list[str]:
    """Compare a checkpoint's meta with this run's. Raise on incompatible differences;
    return the differing keys dist-checkpointing can reshard (e.g. TP and PP sizes)."""
    saved = json.loads((path / "meta.json").read_text())
    diffs = {k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v}
    fatal = {k: d for k, d in diffs.items() if k not in reshardable}
    if fatal:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs this run {b!r}" for k, (a, b) in fatal.items())
        raise CheckpointMismatch(
            f"checkpoint {path} is incompatible with this run ({lines}); point "
            "checkpoint.dir elsewhere or set checkpoint.resume=never"
        )
    return sorted(diffs)


class _MetadataUnpickler(pickle.Unpickler):
    """Admits only torch DCP metadata classes, torch dtypes/sizes and builtins."""

    ALLOWED_MODULE_PREFIXES = (
        "torch.distributed.checkpoint.",
        "torch.distributed._shard.",
        "builtins",
        "collections",
        "megatron.core.dist_checkpointing.",
    )
    # torch.Size and the layout decoder (a lookup of torch.strided & co. by name) appear in
    # every DCP metadata file; dtypes are admitted below.
    ALLOWED = {("torch", "Size"), ("torch.serialization", "_get_layout")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED or module.startswith(self.ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"checkpoint metadata references {module}.{name}; refused")


def check_dcp_metadata(dist_dir: Path) -> None:
    """Refuse a dist-checkpoint whose pickled DCP metadata holds anything but metadata."""
    for meta_file in dist_dir.glob("*.metadata"):
        try:
            _MetadataUnpickler(io.BytesIO(meta_file.read_bytes())).load()
        except pickle.UnpicklingError as err:
            raise CheckpointMismatch(f"unsafe checkpoint file {meta_file}: {err}") from None


def load_checkpoint(path: Path, sharded_state_dict: dict[str, Any]) -> dict[str, Any]:
    """Collective: load tensors in place of `sharded_state_dict`; return the loaded dict."""
    from megatron.core import dist_checkpointing

    check_dcp_metadata(path / "dist")
    with one_intraop_thread():
        return dist_checkpointing.load(sharded_state_dict, str(path / "dist"))


def read_trainer_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "trainer_state.json").read_text())


def save_weights(directory: str | Path, chunks: list[Any]) -> None:
    """Collective: a weights-only dist-checkpoint (e.g. pre-training output for
    `model.init_checkpoint`)."""
    from megatron.core import dist_checkpointing

    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if _is_rank0():
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    _barrier()
    with one_intraop_thread():
        dist_checkpointing.save(_weights_sd(chunks), str(tmp))
    _barrier()
    if _is_rank0():
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    _barrier()


def load_weights(directory: str | Path, chunks: list[Any]) -> None:
    """Collective: load a weights-only (or full) dist-checkpoint into `chunks`."""
    from megatron.core import dist_checkpointing

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"model.init_checkpoint={str(directory)!r} is not a directory; pre-train with "
            "`python -m vzero_nemo.training.pretrain` or point it at a weights checkpoint"
        )
    check_dcp_metadata(directory)
    with one_intraop_thread():
        loaded = dist_checkpointing.load(_weights_sd(chunks), str(directory))
    load_model_state(chunks, loaded)


def unwrap(chunk: Any) -> Any:
    """The model inside DDP / Float16Module wrappers: checkpoint keys never depend on them."""
    while hasattr(chunk, "module"):
        chunk = chunk.module
    return chunk


def _weights_sd(chunks: list[Any]) -> dict[str, Any]:
    if len(chunks) == 1:
        return {"model": unwrap(chunks[0]).sharded_state_dict()}
    return {f"model{i}": unwrap(c).sharded_state_dict() for i, c in enumerate(chunks)}


def model_sharded_state_dict(chunks: list[Any]) -> dict[str, Any]:
    return _weights_sd(chunks)


def load_model_state(chunks: list[Any], loaded: dict[str, Any]) -> None:
    for i, chunk in enumerate(chunks):
        unwrap(chunk).load_state_dict(loaded["model" if len(chunks) == 1 else f"model{i}"])
