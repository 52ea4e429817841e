"""Where the time of a run goes: named wall-clock timers, a profile table, a torch trace.

    timers = Timers()
    with timers.active(), timers("rollout"):
        ...                               # anything below may open `region("prefill")`
    timers.lap()                          # {"rollout": 2.1, "rollout/prefill": 0.4, ...}
    print(format_profile(totals, counts))

`Timers.__call__(name)` times a block under `name`; blocks nest, and a nested block's key is
its parents' keys joined with "/" (`rollout/decision/prefill`). Code that does not own the
timers (generation, the model's vision tower, the training schedule) opens `region(name)`,
which reports to the timers made current by `Timers.active()` and costs nothing when none
are (no lookup beyond one module global).

Totals are wall-clock seconds on the host. On CUDA, work is asynchronous: with
`sync_cuda=True` (set by `train.profile`) every block boundary waits for the device, so the
table attributes GPU time to the block that queued it; without it only blocks that end in a
host read (`.tolist()`, `.item()`) are exact. With `record_functions=True` each block is also
a `torch.profiler.record_function` range, so a trace (`trace`) shows the same names.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch

_ACTIVE: Timers | None = None


class Timers:
    """Accumulating named wall-clock timers (see the module docstring)."""

    def __init__(self, *, sync_cuda: bool = False, record_functions: bool = False) -> None:
        self.sync_cuda = sync_cuda and torch.cuda.is_available()
        self.record_functions = record_functions
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._stack: list[str] = []
        self.laps = 0
        """Completed laps (`lap()` calls), e.g. iterations timed so far."""

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        key = "/".join([*self._stack, name])
        self.totals.setdefault(key, 0.0)  # first-seen order = the order blocks start
        self._stack.append(name)
        record = (
            torch.profiler.record_function(key)
            if self.record_functions
            else contextlib.nullcontext()
        )
        if self.sync_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            with record:
                yield
        finally:
            if self.sync_cuda:
                torch.cuda.synchronize()
            self.totals[key] += time.perf_counter() - start
            self.counts[key] += 1
            self._stack.pop()

    @contextlib.contextmanager
    def active(self) -> Iterator[Timers]:
        """Make these the timers `region()` reports to, for the duration of the block."""
        global _ACTIVE
        previous, _ACTIVE = _ACTIVE, self
        try:
            yield self
        finally:
            _ACTIVE = previous

    def lap(self) -> tuple[dict[str, float], dict[str, int]]:
        """(totals, counts) since the previous lap; starts the next one from zero."""
        totals, counts = dict(self.totals), dict(self.counts)
        self.totals.clear()
        self.counts.clear()
        self.laps += 1
        return totals, counts


_NO_REGION = contextlib.nullcontext()


def region(name: str) -> contextlib.AbstractContextManager:
    """A block timed by the current timers (`Timers.active`), or nothing when none are."""
    return _NO_REGION if _ACTIVE is None else _ACTIVE(name)


def format_profile(totals: dict[str, float], counts: dict[str, int], title: str = "") -> str:
    """The timers as an indented table: seconds, share of the outermost total, calls, and
    the time not covered by a block's children (`(self)`)."""
    if not totals:
        return f"{title}\n(no timed blocks)"
    top_total = sum(v for k, v in totals.items() if "/" not in k) or 1.0
    children: dict[str, float] = defaultdict(float)
    for key, seconds in totals.items():
        if "/" in key:
            children[key.rsplit("/", 1)[0]] += seconds
    width = max(len(k.rsplit("/", 1)[-1]) + 2 * k.count("/") for k in totals) + 2
    lines = [title] if title else []
    lines.append(f"{'block':<{width}} {'seconds':>9} {'share':>6} {'calls':>6} {'self s':>8}")
    for key in _tree_order(totals):
        depth, leaf = key.count("/"), key.rsplit("/", 1)[-1]
        seconds = totals[key]
        own = seconds - children[key] if key in children else None
        lines.append(
            f"{'  ' * depth + leaf:<{width}} {seconds:>9.3f} {seconds / top_total:>6.1%} "
            f"{counts.get(key, 0):>6} {'' if own is None else f'{own:>8.3f}'}"
        )
    return "\n".join(lines)


def _tree_order(totals: dict[str, float]) -> list[str]:
    """Keys depth-first, each level in first-seen order (the order the blocks ran)."""
    order = list(totals)
    rank = {key: i for i, key in enumerate(order)}

    def path(key: str) -> list[int]:
        parts = key.split("/")
        return [rank.get("/".join(parts[: i + 1]), len(order)) for i in range(len(parts))]

    return sorted(order, key=path)


@contextlib.contextmanager
def trace(trace_dir: str | Path, name: str) -> Iterator[None]:
    """A torch profiler trace of the block (CPU, and CUDA when present) written to
    `<trace_dir>/<name>.json` (open it in chrome://tracing or https://ui.perfetto.dev)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    out = Path(trace_dir)
    out.mkdir(parents=True, exist_ok=True)
    with profile(activities=activities, record_shapes=False) as prof:
        yield
    prof.export_chrome_trace(str(out / f"{name}.json"))
