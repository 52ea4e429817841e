"""Where the time of a run goes: named wall-clock timers, a profile table, a torch trace.

    timers = Timers()
    with timers.active(), timers("rollout"):
        ...                               # anything below may open `region("prefill")`
    lap = timers.lap()                    # lap.wall_s == {"rollout": 2.1, ...}
    print(format_profile(lap))

`Timers.__call__(name)` times a block under `name`; blocks nest, and a nested block's key is
its parents' keys joined with "/" (`rollout/decision/prefill`). Code that does not own the
timers (generation, the model's vision tower, the training schedule) opens `region(name)`,
which reports to the timers made current by `Timers.active()` and costs nothing when none
are (no lookup beyond one module global).

Totals are wall-clock seconds on the host, and this process's CPU seconds next to them (on a
shared machine the CPU column is the one that does not depend on other load). On CUDA, work is asynchronous: with
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
from dataclasses import dataclass
from pathlib import Path

import torch

_ACTIVE: Timers | None = None


@dataclass(frozen=True, slots=True)
class Lap:
    """The timed blocks of one lap: key -> wall seconds, CPU seconds, times entered."""

    wall_s: dict[str, float]
    cpu_s: dict[str, float]
    counts: dict[str, int]


class Timers:
    """Accumulating named wall-clock timers (see the module docstring)."""

    def __init__(self, *, sync_cuda: bool = False, record_functions: bool = False) -> None:
        self.sync_cuda = sync_cuda and torch.cuda.is_available()
        self.record_functions = record_functions
        self.totals: dict[str, float] = defaultdict(float)
        """Wall seconds per key."""
        self.cpu_totals: dict[str, float] = defaultdict(float)
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
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            with record:
                yield
        finally:
            if self.sync_cuda:
                torch.cuda.synchronize()
            self.totals[key] += time.perf_counter() - start
            self.cpu_totals[key] += time.process_time() - cpu_start
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

    def lap(self) -> Lap:
        """The blocks timed since the previous lap; starts the next one from zero."""
        lap = Lap(dict(self.totals), dict(self.cpu_totals), dict(self.counts))
        self.totals.clear()
        self.cpu_totals.clear()
        self.counts.clear()
        self.laps += 1
        return lap


_NO_REGION = contextlib.nullcontext()


def region(name: str) -> contextlib.AbstractContextManager:
    """A block timed by the current timers (`Timers.active`), or nothing when none are."""
    return _NO_REGION if _ACTIVE is None else _ACTIVE(name)


def format_profile(lap: Lap, title: str = "") -> str:
    """A lap as an indented table: wall seconds, share of the outermost blocks' total, CPU
    seconds, calls, and the wall time not covered by a block's children (`self s`)."""
    totals = lap.wall_s
    if not totals:
        return f"{title}\n(no timed blocks)"
    top_total = sum(v for k, v in totals.items() if "/" not in k) or 1.0
    children: dict[str, float] = defaultdict(float)
    for key, seconds in totals.items():
        if "/" in key:
            children[key.rsplit("/", 1)[0]] += seconds
    width = max(len(k.rsplit("/", 1)[-1]) + 2 * k.count("/") for k in totals) + 2
    lines = [title] if title else []
    header = (
        f"{'block':<{width}} {'wall s':>8} {'share':>6} {'cpu s':>8} {'calls':>6} {'self s':>8}"
    )
    lines.append(header)
    for key in _tree_order(totals):
        depth, leaf = key.count("/"), key.rsplit("/", 1)[-1]
        seconds = totals[key]
        own = f"{seconds - children[key]:>8.3f}" if key in children else ""
        lines.append(
            f"{'  ' * depth + leaf:<{width}} {seconds:>8.3f} {seconds / top_total:>6.1%} "
            f"{lap.cpu_s.get(key, 0.0):>8.3f} {lap.counts.get(key, 0):>6} {own}"
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
