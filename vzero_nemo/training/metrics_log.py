"""Per-run metrics: a JSONL file (one line per iteration) and wandb (offline by default).

The JSONL file is the source of truth for tests and reports. On resume it is cut back to the
checkpoint's iteration first, so an iteration logged after the last save and then lost to a
kill is logged again exactly once.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from vzero_nemo.config import VZeroConfig


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


def truncate_jsonl(path: Path, last_iteration: int) -> int:
    """Keep only records with iteration <= last_iteration; return how many were kept."""
    if not path.exists():
        return 0
    kept = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill mid-write
        if record.get("iteration", 0) <= last_iteration:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(k + "\n" for k in kept))
    os.replace(tmp, path)
    return len(kept)


class MetricsLogger:
    """Writes metrics from the main process (global rank 0) only."""

    def __init__(
        self,
        cfg: VZeroConfig,
        *,
        run_id: str,
        resumed_iteration: int,
        is_main: bool,
        filename: str = "metrics.jsonl",
    ) -> None:
        self.is_main = is_main
        self.path = Path(cfg.logging.dir) / filename
        self._wandb_run = None
        if not is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_jsonl(self.path, resumed_iteration)
        if cfg.logging.wandb_mode != "disabled":
            self._wandb_run = self._init_wandb(cfg, run_id)

    @staticmethod
    def _init_wandb(cfg: VZeroConfig, run_id: str):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        return wandb.init(
            project=cfg.logging.wandb_project,
            name=cfg.logging.run_name,
            tags=list(cfg.logging.tags),
            id=run_id,
            resume="allow",
            mode=cfg.logging.wandb_mode,
            dir=cfg.logging.dir,
            config=cfg.to_dict(),
        )

    def log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        clean = {k: _jsonable(v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._wandb_run is not None:
            numeric = {k: v for k, v in record.items() if isinstance(v, int | float)}
            self._wandb_run.log(numeric, step=int(record["iteration"]))

    def close(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
