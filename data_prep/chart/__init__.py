"""Charts (bar, horizontal bar, line, pie, scatter, stacked bar) and their spy edits."""

from data_prep.chart.generate import ChartOptions, generate_pair

__all__ = ["ChartOptions", "generate_pair"]
