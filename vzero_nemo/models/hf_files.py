"""Hugging Face safetensors checkpoints on disk, one tensor or one shard at a time.

    write_sharded(named_tensors, out_dir, max_shard_bytes)   # model-0000i-of-0000n + index
    for name, tensor in iter_tensors(folder): ...            # reads one tensor at a time
    report = compare_checkpoints(folder_a, folder_b)         # tensor-by-tensor bit equality

Neither side ever holds more than one tensor: the writer appends each tensor's bytes to its
shard as it comes (`SafetensorsWriter`), the reader copies out the tensor asked for from the
memory-mapped file.
Layout as transformers writes it: a single `model.safetensors`, or shards named
`model-00001-of-0000N.safetensors` with `model.safetensors.index.json` mapping each tensor
name to its shard.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_COPY_CHUNK = 64 << 20
_DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


class SafetensorsWriter:
    """One safetensors file written tensor by tensor without holding the tensors: their bytes
    go to a side file as they come, and `close` writes the header followed by a chunked copy
    of that data (the format puts the header, which lists every tensor, first)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data_path = self.path.with_name(self.path.name + ".data")
        self._data = open(self._data_path, "wb")  # noqa: SIM115 (closed in close())
        self._header: dict[str, object] = {}
        self.nbytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.dtype not in _DTYPE_NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, not storable here")
        if name in self._header:
            raise ValueError(f"tensor {name!r} written twice")
        flat = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        self._data.write(memoryview(flat.numpy()))
        self._header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [self.nbytes, self.nbytes + flat.numel()],
        }
        self.nbytes += flat.numel()

    def close(self, metadata: dict[str, str] | None = None) -> Path:
        self._data.close()
        raw = json.dumps({"__metadata__": metadata or {}, **self._header}).encode()
        raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
        with open(self.path, "wb") as out, open(self._data_path, "rb") as data:
            out.write(struct.pack("<Q", len(raw)))
            out.write(raw)
            shutil.copyfileobj(data, out, _COPY_CHUNK)
        self._data_path.unlink()
        return self.path


def write_sharded(
    named_tensors: Iterable[tuple[str, torch.Tensor]], out: Path, max_shard_bytes: int
) -> list[Path]:
    """Write the stream as safetensors shards of at most `max_shard_bytes` (a larger tensor
    gets a shard of its own) plus the index; returns the shard paths. Memory: the tensor the
    stream holds, nothing more. Shards get temporary names until their count is known."""
    out = Path(out)
    writers: list[SafetensorsWriter] = []
    shard_of: dict[str, int] = {}
    for name, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if not writers or (writers[-1].nbytes and writers[-1].nbytes + nbytes > max_shard_bytes):
            if writers:
                writers[-1].close({"format": "pt"})
            writers.append(SafetensorsWriter(out / f"model-part-{len(writers):05d}.tmp"))
        writers[-1].add(name, tensor)
        shard_of[name] = len(writers) - 1
    if not writers:
        raise ValueError("write_sharded got no tensors")
    writers[-1].close({"format": "pt"})
    if len(writers) == 1:
        writers[0].path.rename(out / SINGLE_FILE)
        return [out / SINGLE_FILE]
    names = [f"model-{i + 1:05d}-of-{len(writers):05d}.safetensors" for i in range(len(writers))]
    for writer, name in zip(writers, names):
        writer.path.rename(out / name)
    index = {
        "metadata": {"total_size": sum(w.nbytes for w in writers)},
        "weight_map": {k: names[i] for k, i in sorted(shard_of.items())},
    }
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2))
    return [out / name for name in names]


def tensor_files(folder: str | Path) -> dict[str, Path]:
    """{tensor name: the file holding it} of a checkpoint folder (index or single file)."""
    folder = Path(folder)
    if (folder / INDEX_FILE).is_file():
        weight_map = json.loads((folder / INDEX_FILE).read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    if (folder / SINGLE_FILE).is_file():
        with safe_open(folder / SINGLE_FILE, framework="pt") as f:
            return {name: folder / SINGLE_FILE for name in f.keys()}
    raise ValueError(f"{folder} holds neither {INDEX_FILE} nor {SINGLE_FILE}")


def iter_tensors(folder: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every tensor of a checkpoint, file by file, one tensor in memory."""
    by_file: dict[Path, list[str]] = {}
    for name, path in sorted(tensor_files(folder).items()):
        by_file.setdefault(path, []).append(name)
    for path, names in by_file.items():
        with safe_open(path, framework="pt") as f:
            for name in names:
                yield name, f.get_tensor(name)


def checkpoint_bytes(folder: str | Path) -> dict[str, int]:
    """{"total": bytes of all tensors, "largest_shard": bytes of the largest file}."""
    sizes = [path.stat().st_size for path in set(tensor_files(folder).values())]
    return {"total": sum(sizes), "largest_shard": max(sizes)}


@dataclass(frozen=True, slots=True)
class Comparison:
    """Tensor-by-tensor comparison of two checkpoints."""

    compared: int
    """Tensors present in both and compared."""
    mismatched: list[str]
    """Names whose shape, dtype or any bit differs."""
    only_in_a: list[str]
    only_in_b: list[str]

    @property
    def identical(self) -> bool:
        return not (self.mismatched or self.only_in_a or self.only_in_b)


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def compare_checkpoints(a: str | Path, b: str | Path) -> Comparison:
    """Compare two checkpoints tensor by tensor (bit equality), holding two tensors at once."""
    files_b = tensor_files(b)
    names_a = set(tensor_files(a))
    mismatched = []
    compared = 0
    for name, tensor in iter_tensors(a):
        if name not in files_b:
            continue
        with safe_open(files_b[name], framework="pt") as f:
            other = f.get_tensor(name)
        compared += 1
        same = tensor.dtype == other.dtype and tensor.shape == other.shape
        if not (same and torch.equal(_bytes(tensor), _bytes(other))):
            mismatched.append(name)
    return Comparison(
        compared=compared,
        mismatched=mismatched,
        only_in_a=sorted(names_a - set(files_b)),
        only_in_b=sorted(set(files_b) - names_a),
    )
