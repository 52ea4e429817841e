"""Random chart specs and the spy edits on them (pure Python + numpy, no drawing).

A spec is a JSON-able dict:

    {"type": "bar" | "hbar" | "line" | "pie" | "scatter" | "stacked_bar",
     "title", "xlabel", "ylabel", "categories": [...],
     "series": [{"name", "values": [...], "color"}],   # one or more
     "point_colors": [...] | None,   # bar / hbar / pie: one colour per category
     "value_max": float,             # fixed axis limit, so edits never rescale the axes
    "decimals": 0 | 1,              # value precision
     "show_values": bool, "legend": bool}

Scatter charts keep their x positions in "x" (one list per series, same length as values).
"""

from __future__ import annotations

import copy
import math

import numpy as np

CHART_TYPES = ("bar", "hbar", "line", "pie", "scatter", "stacked_bar")
CHANGE_KINDS = ("swap_values", "swap_colors", "change_value")

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#003f5c", "#ffa600", "#58508d", "#00a676",
)  # fmt: skip
DIMENSIONS = {
    "Region": ["North", "South", "East", "West", "Central", "Coast", "Islands"],
    "Month": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov"],
    "Fruit": ["Apple", "Banana", "Cherry", "Grape", "Mango", "Peach", "Plum", "Kiwi"],
    "Day": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "Year": ["2016", "2017", "2018", "2019", "2020", "2021", "2022", "2023"],
    "Team": ["Lions", "Tigers", "Bears", "Wolves", "Hawks", "Sharks", "Owls"],
    "Product": ["Alpha", "Beta", "Gamma", "Delta", "Omega", "Sigma", "Zeta"],
}
METRICS = {
    "Sales": ("k$", 20, 120),
    "Visitors": ("thousands", 5, 60),
    "Rainfall": ("mm", 10, 200),
    "Downloads": ("k", 1, 40),
    "Score": ("points", 40, 100),
    "Revenue": ("M$", 2, 30),
    "Votes": ("%", 5, 45),
    "Energy use": ("kWh", 100, 900),
}
SERIES_NAMES = ("2022", "2023", "2024", "Plan", "Actual", "Online", "Store")


def _nice_ceiling(x: float) -> float:
    exp = 10 ** math.floor(math.log10(x))
    for m in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if m * exp >= x:
            return m * exp
    return 10.0 * exp


def _values(rng: np.random.Generator, n: int, lo: float, hi: float, decimals: int) -> list:
    vals = rng.uniform(lo, hi, size=n)
    return [round(float(v), decimals) if decimals else int(round(v)) for v in vals]


def random_spec(
    rng: np.random.Generator, chart_type: str, min_categories: int, max_categories: int
) -> dict:
    """A random chart spec of `chart_type`."""
    dim = str(rng.choice(sorted(DIMENSIONS)))
    metric = str(rng.choice(sorted(METRICS)))
    unit, lo, hi = METRICS[metric]
    pool = DIMENSIONS[dim]
    n = int(rng.integers(min_categories, min(max_categories, len(pool)) + 1))
    if chart_type == "pie":
        n = min(n, 6)
    start = int(rng.integers(0, len(pool) - n + 1))
    categories = (
        pool[start : start + n]
        if dim in ("Month", "Day", "Year")
        else sorted(rng.choice(pool, size=n, replace=False).tolist(), key=pool.index)
    )
    decimals = int(rng.choice([0, 1]))
    num_series = {"line": int(rng.integers(1, 4)), "stacked_bar": int(rng.integers(2, 4)),
                  "scatter": int(rng.integers(1, 3))}.get(chart_type, 1)  # fmt: skip
    colors = rng.choice(PALETTE, size=max(n, num_series), replace=False).tolist()
    names = rng.choice(SERIES_NAMES, size=num_series, replace=False).tolist()
    series = []
    for s in range(num_series):
        count = int(rng.integers(8, 16)) if chart_type == "scatter" else n
        series.append(
            {"name": names[s], "values": _values(rng, count, lo, hi, decimals), "color": colors[s]}
        )
    spec = {
        "type": chart_type,
        "title": f"{metric} by {dim.lower()}" if chart_type != "scatter" else f"{metric} vs. day",
        "xlabel": dim if chart_type != "scatter" else "Day of month",
        "ylabel": f"{metric} ({unit})",
        "categories": categories,
        "series": series,
        "point_colors": colors[:n] if chart_type in ("bar", "hbar", "pie") else None,
        "value_max": 0.0,
        "decimals": decimals,
        "show_values": bool(chart_type in ("bar", "hbar") and rng.random() < 0.5),
        "legend": num_series > 1,
    }
    if chart_type == "scatter":
        spec["x"] = [sorted(_values(rng, len(s["values"]), 1, 30, 1)) for s in series]
    spec["value_max"] = _nice_ceiling(1.2 * _peak(spec))
    return spec


def _peak(spec: dict) -> float:
    """The largest bar stack / value drawn (sets the axis limit)."""
    if spec["type"] == "stacked_bar":
        values = np.array([s["values"] for s in spec["series"]], dtype=float)
        return float(values.sum(axis=0).max())
    return float(max(max(s["values"]) for s in spec["series"]))


def applicable_kinds(spec: dict, kinds: tuple[str, ...]) -> list[str]:
    """The change kinds of `kinds` that make sense for this spec."""
    out = []
    for kind in kinds:
        if kind == "swap_colors" and spec["point_colors"] is None and len(spec["series"]) < 2:
            continue
        out.append(kind)
    return out


def apply_change(spec: dict, kind: str, rng: np.random.Generator) -> tuple[dict, dict]:
    """A copy of `spec` with one edit, and the edit's record {before, after, target}."""
    new = copy.deepcopy(spec)
    s_idx = int(rng.integers(len(spec["series"])))
    series = new["series"][s_idx]
    labels = spec["categories"] if spec["type"] != "scatter" else None

    def label(i: int) -> str:
        return labels[i] if labels is not None else f"{series['name']}#{i}"

    if kind == "swap_values":
        i, j = sorted(rng.choice(len(series["values"]), size=2, replace=False).tolist())
        vals = series["values"]
        before = {label(i): vals[i], label(j): vals[j]}
        vals[i], vals[j] = vals[j], vals[i]
        after = {label(i): vals[i], label(j): vals[j]}
        target = {"series": series["name"], "items": [label(i), label(j)]}
    elif kind == "swap_colors":
        if new["point_colors"] is not None:
            i, j = sorted(rng.choice(len(new["point_colors"]), size=2, replace=False).tolist())
            pc = new["point_colors"]
            before = {labels[i]: pc[i], labels[j]: pc[j]}
            pc[i], pc[j] = pc[j], pc[i]
            after = {labels[i]: pc[i], labels[j]: pc[j]}
            target = {"series": None, "items": [labels[i], labels[j]]}
        else:
            i, j = sorted(rng.choice(len(new["series"]), size=2, replace=False).tolist())
            a, b = new["series"][i], new["series"][j]
            before = {a["name"]: a["color"], b["name"]: b["color"]}
            a["color"], b["color"] = b["color"], a["color"]
            after = {a["name"]: a["color"], b["name"]: b["color"]}
            target = {"series": [a["name"], b["name"]], "items": None}
    elif kind == "change_value":
        i = int(rng.integers(len(series["values"])))
        old = series["values"][i]
        factor = float(rng.choice([rng.uniform(0.35, 0.7), rng.uniform(1.35, 1.8)]))
        # keep the edited value (or its bar stack) inside the fixed axis limit
        limit = spec["value_max"]
        if spec["type"] == "stacked_bar":
            limit -= sum(other["values"][i] for other in new["series"] if other is not series)
        value = min(max(old * factor, 0.05 * spec["value_max"]), limit - 0.12 * spec["value_max"])
        value = round(value, spec["decimals"]) if spec["decimals"] else int(round(value))
        series["values"][i] = value
        before, after = {label(i): old}, {label(i): value}
        target = {"series": series["name"], "items": [label(i)]}
    else:
        raise ValueError(f"unknown chart change kind {kind!r}; expected one of {CHANGE_KINDS}")
    return new, {"before": before, "after": after, "target": target}
