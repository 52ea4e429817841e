"""Optional inputs of the run report, read defensively: a missing or partial file gives an
empty section, never a failed report.

- `clue_eval*.json`: clues of held-out games judged by a frozen observer. Accepted shapes: one
  record or a list of records `{"label": str, "metrics": {...}}` (a bare metrics dict is one
  record); metrics either nested by role (`{"spy": {...}, "civilian": {...}}`) or flat keys
  naming the role (`spy/contradiction_rate`, `clue/civilian_grounded_rate`); values plain
  numbers or rate rows `{"value", "lo", "hi"}`.
- `benchmarks.json` (`python -m vzero_nemo.eval.benchmarks`): `{"before": {task: {metric:
  value}}, "after": {...}}`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

ROLE_COLUMNS = ("spy", "civilian", "all")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, dict) and "value" in v:
        lo, hi = v.get("lo"), v.get("hi")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo):
            return f"{v['value']:.3f} [{lo:.3f}, {hi:.3f}]"
        v = v["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and v.is_integer() and abs(v) > 1:
        return str(int(v))  # a count stored as a float
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _split_role(key: str) -> tuple[str, str]:
    """(metric name without the role word, role column) of a flat metric key."""
    for role in ("spy", "civilian"):
        pattern = rf"(^|[/_.]){role}($|[/_.])"
        if re.search(pattern, key):
            name = re.sub(pattern, lambda m: m.group(1) if m.group(2) else "", key, count=1)
            return name.strip("/_.") or key, role
    return key, "all"


def _table(metrics: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    cells: dict[str, dict[str, str]] = {}
    nested = [r for r in ("spy", "civilian") if isinstance(metrics.get(r), dict)]
    for key, value in metrics.items():
        if key in nested:
            for inner, v in value.items():
                cells.setdefault(inner, {})[key] = _fmt(v)
        elif not isinstance(value, (list, dict)) or "value" in value:
            name, role = _split_role(key)
            cells.setdefault(name, {})[role] = _fmt(value)
    columns = [c for c in ROLE_COLUMNS if any(c in row for row in cells.values())]
    rows = [
        {"label": name, "values": [row.get(c, "-") for c in columns]} for name, row in cells.items()
    ]
    return columns, rows


def load_clue_evals(run: Path) -> list[dict[str, Any]]:
    """Every `clue_eval*.json` of the run as {label, columns, rows} tables."""
    blocks = []
    for path in sorted(run.glob("clue_eval*.json")):
        data = _read_json(path)
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                continue
            metrics = rec.get("metrics", rec)
            if not isinstance(metrics, dict):
                continue
            columns, rows = _table(metrics)
            if rows:
                label = rec.get("label") or f"{path.stem}" + (
                    f" #{i + 1}" if len(records) > 1 else ""
                )
                blocks.append({"label": f"{label} ({path.name})", "columns": columns, "rows": rows})
    return blocks


def load_benchmarks(run: Path) -> list[dict[str, str]]:
    """Rows task / metric / before / after / change of `benchmarks.json`, if present."""
    data = _read_json(run / "benchmarks.json")
    if not isinstance(data, dict):
        return []
    before, after = data.get("before") or {}, data.get("after") or {}
    rows = []
    for task in sorted(set(before) | set(after)):
        metrics = sorted(set(before.get(task, {})) | set(after.get(task, {})))
        for metric in metrics:
            b, a = before.get(task, {}).get(metric), after.get(task, {}).get(metric)
            numeric = all(isinstance(v, (int, float)) for v in (b, a))
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "before": "-" if b is None else _fmt(b),
                    "after": "-" if a is None else _fmt(a),
                    "change": f"{a - b:+.3f}" if numeric else "-",
                }
            )
    return rows


def load_metrics(run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records (torn lines skipped), in iteration order."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "iteration" in rec:
            records.append(rec)
    return sorted(records, key=lambda r: r["iteration"])
