"""Draw a chart spec with matplotlib's Agg canvas into a uint8 RGB array.

One Figure per process and size is reused (cleared between charts); drawing never touches
pyplot or global rcParams: every style value comes from `STYLE` inside an rc_context, so the
output does not depend on a user's matplotlibrc.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 9.0,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 6.5,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.0,
    "axes.grid": False,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "text.antialiased": True,
    "path.simplify": False,
}
MARGINS = {  # left, bottom, right, top (figure fractions)
    "hbar": (0.23, 0.15, 0.96, 0.88),
    "pie": (0.02, 0.02, 0.98, 0.88),
}
DEFAULT_MARGINS = (0.14, 0.17, 0.97, 0.86)


@lru_cache(maxsize=4)
def _figure(width: int, height: int, dpi: int) -> Figure:
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _draw(ax, spec: dict) -> None:
    kind = spec["type"]
    cats = spec["categories"]
    pos = np.arange(len(cats))
    series = spec["series"]
    if kind in ("bar", "hbar"):
        vals = series[0]["values"]
        if kind == "bar":
            bars = ax.bar(pos, vals, color=spec["point_colors"], width=0.65)
            ax.set_xticks(pos, cats)
            ax.set_ylim(0, spec["value_max"])
        else:
            bars = ax.barh(pos, vals, color=spec["point_colors"], height=0.65)
            ax.set_yticks(pos, cats)
            ax.invert_yaxis()
            ax.set_xlim(0, spec["value_max"])
        if spec["show_values"]:
            ax.bar_label(bars, labels=[_fmt(v, spec["decimals"]) for v in vals], padding=2,
                         fontsize=6.5)  # fmt: skip
    elif kind == "stacked_bar":
        bottom = np.zeros(len(cats))
        for s in series:
            ax.bar(pos, s["values"], bottom=bottom, color=s["color"], width=0.65, label=s["name"])
            bottom += np.asarray(s["values"], dtype=float)
        ax.set_xticks(pos, cats)
        ax.set_ylim(0, spec["value_max"])
    elif kind == "line":
        for s in series:
            ax.plot(pos, s["values"], color=s["color"], marker="o", label=s["name"])
        ax.set_xticks(pos, cats)
        ax.set_ylim(0, spec["value_max"])
        ax.set_xlim(-0.4, len(cats) - 0.6)
    elif kind == "scatter":
        for s, xs in zip(series, spec["x"], strict=True):
            ax.scatter(xs, s["values"], color=s["color"], s=16, label=s["name"])
        ax.set_xlim(0, 31)
        ax.set_ylim(0, spec["value_max"])
    elif kind == "pie":
        ax.pie(series[0]["values"], labels=cats, colors=spec["point_colors"], startangle=90,
               counterclock=False, autopct="%1.0f%%", pctdistance=0.72,
               textprops={"fontsize": 6.5}, wedgeprops={"linewidth": 0.8, "edgecolor": "white"})  # fmt: skip
        ax.set_aspect("equal")
    else:
        raise ValueError(f"unknown chart type {kind!r}")
    ax.set_title(spec["title"], pad=20 if spec["legend"] else 6)
    if kind != "pie":
        xlabel, ylabel = spec["xlabel"], spec["ylabel"]
        if kind == "hbar":
            xlabel, ylabel = ylabel, xlabel
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.spines[["top", "right"]].set_visible(False)
    if spec["legend"]:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.03), frameon=False,
                  ncols=len(series), borderaxespad=0.1, handlelength=1.5)  # fmt: skip


def render_chart(spec: dict, width: int, height: int, dpi: int) -> np.ndarray:
    """The chart as a uint8 (height, width, 3) array."""
    fig = _figure(width, height, dpi)
    fig.clf()
    with mpl.rc_context(STYLE):
        left, bottom, right, top = MARGINS.get(spec["type"], DEFAULT_MARGINS)
        if spec["legend"]:
            top -= 0.08  # room for the legend row between title and axes
        ax = fig.add_axes((left, bottom, right - left, top - bottom))
        _draw(ax, spec)
        fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    if rgba.shape[:2] != (height, width):
        raise RuntimeError(f"canvas is {rgba.shape[1]}x{rgba.shape[0]}, expected {width}x{height}")
    return rgba[..., :3].copy()
