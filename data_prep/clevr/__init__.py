"""CLEVR-style scenes (4-6 shaded solids on a grey floor) and their spy edits."""

from data_prep.clevr.generate import generate_pair
from data_prep.clevr.options import ClevrOptions

__all__ = ["ClevrOptions", "generate_pair"]
