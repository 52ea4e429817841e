"""The pair generators by domain: `GENERATORS[domain](seed, index, **options) -> PairSample`.

    from data_prep.generators import GENERATORS, OPTIONS
    sample = GENERATORS["clevr"](seed=0, index=12, width=320, height=240)
    OPTIONS["chart"](chart_types=("bar",))   # validate options without generating

Each generator is a pure function of (seed, index, options) (and, for "real", the photo
files), safe to call from worker processes; its key is f"{domain}-{seed}-{index:08d}".
"""

from __future__ import annotations

from collections.abc import Callable

from data_prep.chart import ChartOptions
from data_prep.chart import generate_pair as chart_pair
from data_prep.clevr import ClevrOptions
from data_prep.clevr import generate_pair as clevr_pair
from data_prep.real import RealOptions
from data_prep.real import generate_pair as real_pair
from vzero_nemo.data.schema import PairSample

GENERATORS: dict[str, Callable[..., PairSample]] = {
    "clevr": clevr_pair,
    "chart": chart_pair,
    "real": real_pair,
}
OPTIONS: dict[str, type] = {"clevr": ClevrOptions, "chart": ChartOptions, "real": RealOptions}
