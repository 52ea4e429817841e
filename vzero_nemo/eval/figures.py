"""Figures of the run report: training curves (matplotlib) and game-viewer images (PIL).

    figs = curve_figures(records, spo_thresholds)     # {name: Figure spec + PNG bytes}
    png = pair_image(original, modified, changes)     # side by side, changed objects boxed

Every curve is drawn over the iteration axis with the stage of each iteration shown as
background bands (decision / clue), so a switch of Iterative-SPO is visible on every plot.
A curve whose metric a run did not log is left out, not drawn empty.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

STAGE_COLORS = {"decision": "#dbe9f6", "clue": "#fde2c4"}
TIME_KEYS = ("time/data_s", "time/rollout_s", "time/logprobs_s", "time/train_s", "time/other_s")
DPI = 100


@dataclass(frozen=True, slots=True)
class Curve:
    """One panel: title, y label, lines (metric key, label) and horizontal reference lines."""

    name: str
    title: str
    ylabel: str
    lines: tuple[tuple[str, str], ...]
    hlines: tuple[tuple[float, str], ...] = ()


def _spo_hlines(t: dict[str, float]) -> tuple[tuple[float, str], ...]:
    """The Iterative-SPO thresholds the run has, as reference lines on the EMA panel."""
    return tuple(
        (v, label)
        for v, label in (
            (t.get("to_clue_accuracy"), "to clue: accuracy >="),
            (1 - t["to_decision_error"] if "to_decision_error" in t else None, "to decision: <"),
            (t.get("to_clue_na_rate"), "to clue: N/A <="),
            (t.get("to_decision_na_rate"), "to decision: N/A >="),
        )
        if v is not None
    )


def curves_for(thresholds: dict[str, float], chance: float | None) -> list[Curve]:
    """The report's curve panels (Iterative-SPO thresholds from the run's `spo` config)."""
    acc_lines = ((chance, "chance"),) if chance is not None else ()
    spo_hlines = _spo_hlines(thresholds)
    return [
        Curve(
            "accuracy",
            "Game accuracy (training games)",
            "rate",
            (
                ("game/decision_accuracy", "decision accuracy"),
                ("game/vote_accuracy", "vote accuracy"),
            ),
            acc_lines,
        ),
        Curve(
            "spo",
            "Iterative-SPO statistics and thresholds",
            "EMA",
            (("spo/accuracy_ema", "accuracy EMA"), ("spo/na_rate_ema", "N/A rate EMA")),
            spo_hlines,
        ),
        Curve(
            "clue_rewards",
            "Clue rewards and RAE baselines per role",
            "reward",
            (
                ("reward/clue_spy", "spy reward"),
                ("reward/clue_civilian", "civilian reward"),
                ("rae/baseline_spy", "spy baseline"),
                ("rae/baseline_civilian", "civilian baseline"),
            ),
            ((0.0, ""),),
        ),
        Curve("kl", "KL to the reference (k3, per token)", "KL", (("train/kl", "KL"),)),
        Curve(
            "lengths",
            "Response lengths",
            "tokens",
            (("response/clue_tokens_mean", "clue"), ("response/decision_tokens_mean", "vote")),
        ),
        Curve(
            "rates",
            "N/A, invalid and unparseable rates",
            "rate",
            (
                ("game/na_rate", "N/A votes"),
                ("game/invalid_vote_rate", "invalid votes"),
                ("game/clue_parse_failure_rate", "unparseable clues"),
            ),
        ),
    ]


def _value(record: dict[str, Any], key: str) -> float:
    v = record.get(key)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _stage_bands(ax, records: Sequence[dict[str, Any]]) -> None:
    """Shade each iteration by the stage it trained (contiguous runs merged)."""
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].get("stage") != records[start].get("stage"):
            color = STAGE_COLORS.get(str(records[start].get("stage")), "#eeeeee")
            first, last = records[start]["iteration"], records[i - 1]["iteration"]
            ax.axvspan(first - 0.5, last + 0.5, color=color, lw=0, zorder=0)
            start = i


def _legend(ax, stages: set[str]) -> None:
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    for stage in sorted(stages & set(STAGE_COLORS)):
        handles.append(Patch(color=STAGE_COLORS[stage]))
        labels.append(f"{stage} stage")
    ax.legend(handles, labels, fontsize=7, loc="best", framealpha=0.8)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_curve(curve: Curve, records: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG of one panel, or None when the run logged none of its metrics."""
    present = [(k, label) for k, label in curve.lines if any(k in r for r in records)]
    if not records or not present:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    _stage_bands(ax, records)
    x = [r["iteration"] for r in records]
    for key, label in present:
        ax.plot(x, [_value(r, key) for r in records], marker=".", ms=3, lw=1.2, label=label)
    for i, (y, label) in enumerate(curve.hlines):
        ax.axhline(y, color="0.35", ls=(0, (4, 2 + i)), lw=0.9, label=label or None)
    ax.set(title=curve.title, xlabel="iteration", ylabel=curve.ylabel)
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    _legend(ax, {str(r.get("stage")) for r in records})
    return _png(fig)


def plot_time_split(records: Sequence[dict[str, Any]]) -> bytes | None:
    """Stacked bars: where each iteration's wall time went."""
    keys = [k for k in TIME_KEYS if any(k in r for r in records)]
    if not records or not keys:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    x = [r["iteration"] for r in records]
    bottom = [0.0] * len(records)
    for key in keys:
        ys = [0.0 if math.isnan(v := _value(r, key)) else v for r in records]
        ax.bar(x, ys, bottom=bottom, width=0.8, label=key.removeprefix("time/").removesuffix("_s"))
        bottom = [b + y for b, y in zip(bottom, ys)]
    ax.set(title="Time split of each iteration", xlabel="iteration", ylabel="seconds")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=7, ncol=len(keys), loc="upper center", bbox_to_anchor=(0.5, -0.22))
    return _png(fig)


def curve_pngs(
    records: Sequence[dict[str, Any]], thresholds: dict[str, float], chance: float | None
) -> dict[str, bytes]:
    """Every panel the run has data for, in report order: {name: PNG bytes}."""
    out = {}
    for curve in curves_for(thresholds, chance):
        png = plot_curve(curve, records)
        if png is not None:
            out[curve.name] = png
    time_png = plot_time_split(records)
    if time_png is not None:
        out["time_split"] = time_png
    return out


def pair_image(
    original: Image.Image, modified: Image.Image, changes: Sequence[dict[str, Any]], scale: int = 4
) -> bytes:
    """PNG: the civilians' image and the spy's image side by side (upscaled `scale`x, pixel
    art kept sharp), each changed region boxed in red on both."""
    w, h = original.size
    gap = 6 * scale
    canvas = Image.new("RGB", (2 * w * scale + gap, h * scale), "white")
    for i, img in enumerate((original, modified)):
        big = img.convert("RGB").resize((w * scale, h * scale), Image.NEAREST)
        draw = ImageDraw.Draw(big)
        for change in changes:
            x0, y0, x1, y1 = change["box"]
            draw.rectangle(
                (x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1),
                outline=(230, 20, 20),
                width=max(2, scale // 2),
            )
        canvas.paste(big, (i * (w * scale + gap), 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
