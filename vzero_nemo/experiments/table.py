"""The ablation table (markdown) and figure (PNG) from per-run results.

Each cell is the mean over seeds with the spread (half the min-max range, i.e. +- covers every
seed) next to it; rates come from held-out games whose number is in the header.
"""

from __future__ import annotations

import statistics
from pathlib import Path

COLUMNS = (
    ("acc own clues", lambda r: r["eval"]["own"]["decision_accuracy"]),
    ("acc oracle clues", lambda r: r["eval"]["oracle"]["decision_accuracy"]),
    ("spy clues contradicting", lambda r: r["eval"]["own"]["clue/spy_contradicts_original_rate"]),
    ("civilian clues contradicting",
     lambda r: r["eval"]["own"]["clue/civilian_contradicts_original_rate"]),
    ("N/A rate", lambda r: r["eval"]["own"]["na_rate"]),
    ("1st clue stage: Δ spy contradicting", lambda r: _stage_change(r, "spy/contradicts_rate")),
    ("1st clue stage: Δ civilian grounded", lambda r: _stage_change(r, "civilian/grounded_rate")),
    ("1st clue stage: Δ frozen-observer acc",
     lambda r: _stage_change(r, "observer/vote_accuracy")),
    ("switches", lambda r: r["switches"]),
    ("clue iterations", lambda r: r["clue_iterations"]),
    ("train time s", lambda r: r["train_s"]),
)  # fmt: skip


def _stage_change(result: dict, key: str) -> float | None:
    """After - before of `key` over the run's first clue stage (frozen observer), or None
    for a run without one (decision only, clue only)."""
    stage = result.get("clue_stage")
    return None if stage is None else stage["after"][key] - stage["before"][key]


def mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (max(values) - min(values)) / 2


def _cell(values: list[float], integer: bool = False) -> str:
    if not values:  # no run of the row has this measurement
        return "-"
    mean, spread = mean_spread(values)
    if len(values) == 1:  # one seed: no spread to state
        return f"{mean:.1f}" if integer else f"{mean:.3f}"
    if integer:
        return f"{mean:.1f} ± {spread:.1f}"
    return f"{mean:.3f} ± {spread:.3f}"


def summarise(results: list[dict]) -> dict[str, dict[str, list[float]]]:
    rows: dict[str, dict[str, list[float]]] = {}
    for r in results:
        row = rows.setdefault(r["row"], {name: [] for name, _ in COLUMNS})
        for name, get in COLUMNS:
            value = get(r)
            if value is not None:
                row[name].append(float(value))
    return rows


def markdown(results: list[dict], before: dict, command: str) -> str:
    rows = summarise(results)
    seeds = sorted({r["seed"] for r in results})
    games = int(before["own"]["games"])
    head = ["row", *(name for name, _ in COLUMNS)]
    lines = [
        f"Held-out games per evaluation: {games} (the same games for every run); seeds "
        f"{seeds}; cells are mean ± half the min-max range over the row's seeds (one value "
        "where a row has one seed).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    start = {"own": before["own"], "oracle": before["oracle"]}
    pre = {"eval": start, "switches": 0, "clue_iterations": 0, "train_s": 0}
    lines.append(
        "| pre-trained (start) | "
        + " | ".join(_cell([float(get(pre))]) for _, get in COLUMNS[:5])
        + " | -" * (len(COLUMNS) - 5)
        + " |"
    )
    for row, cols in rows.items():
        cells = [_cell(v, integer=name in ("switches", "clue iterations", "train time s"))
                 for name, v in cols.items()]  # fmt: skip
        seeds = len(cols["acc own clues"])
        lines.append(
            f"| {row} ({seeds} seed{'s' if seeds > 1 else ''}) | " + " | ".join(cells) + " |"
        )
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def figure(results: list[dict], before: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(results)
    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 3.6), dpi=110)
    width = 0.38
    for k, (column, color) in enumerate((("acc own clues", "#3b6ea8"),
                                         ("acc oracle clues", "#d08b2c"))):  # fmt: skip
        means, errs = zip(*(mean_spread(rows[n][column]) for n in names))
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, color=color, label=column)
    for value, style in ((before["own"]["decision_accuracy"], "-"),
                         (before["oracle"]["decision_accuracy"], "--")):  # fmt: skip
        ax.axhline(value, color="gray", linestyle=style, linewidth=1)
    ax.axhline(before["own"]["chance_accuracy"], color="black", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("held-out decision accuracy")
    ax.set_title("Ablations (bars: mean, whiskers: min-max over seeds; gray: pre-trained)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_table(results: list[dict], before: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(markdown(results, before, command))
    figure(results, before, out / "ablation.png")
