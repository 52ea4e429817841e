"""Quiet terminals: a command prints its own progress and results; library chatter goes to a
log file (or to the terminal with `--verbose`).

    from vzero_nemo import logs
    logs.configure(verbose=args.verbose, log_file=args.log_file)   # before heavy imports

Importing the model stack on a machine without Transformer-Engine / Apex makes megatron-core
and Megatron-Bridge emit dozens of UserWarnings, INFO records with tracebacks of optional
imports, and `logging.basicConfig(level=INFO)` at import time (megatron.training). Here:
- Python warnings are captured into logging (`py.warnings`);
- the root logger gets our handlers first, so a library's later `basicConfig` is a no-op;
- the terminal shows records of our own packages at INFO and above, and other libraries'
  records at ERROR and above; `--verbose` (or VZERO_VERBOSE=1) shows everything at INFO;
- `--log-file PATH` (or VZERO_LOG_FILE) receives every record at INFO and above, including
  the ones held back before the file was named, appended so the main job's steps share one.
Child processes inherit VZERO_VERBOSE / VZERO_LOG_FILE from the environment.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import warnings
from pathlib import Path

OWN_PACKAGES = ("vzero_nemo", "data_prep", "recipes")
# Loggers that install their own terminal handler at import time (bypassing the root's):
# their records are muted at the logger and handed to the log file instead.
SELF_HANDLED = ("megatron.bridge.utils.import_utils", "torch.utils.cpp_extension")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STATE: dict[str, logging.Handler] = {}


class _ConsoleFilter(logging.Filter):
    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        own = record.name.split(".")[0] in OWN_PACKAGES
        return record.levelno >= (logging.INFO if own else logging.ERROR)


class _FileOnly(logging.Filter):
    """On a self-handled logger: pass records through with --verbose, else only to the log
    file (or the held buffer)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        sink = _STATE.get("file") or _STATE.get("held")
        if sink is not None and record.levelno >= sink.level:
            sink.handle(record)
        return False


def _set_filter(target: logging.Filterer, new: logging.Filter) -> None:
    for f in list(target.filters):
        if type(f) is type(new):
            target.removeFilter(f)
    target.addFilter(new)


def env_verbose() -> bool:
    return os.environ.get("VZERO_VERBOSE", "") not in ("", "0", "false")


def configure(verbose: bool | None = None, log_file: str | Path | None = None) -> None:
    """Route warnings and library logs as described above (idempotent; a later call may name
    the log file or turn verbose on)."""
    verbose = env_verbose() if verbose is None else verbose
    log_file = log_file or os.environ.get("VZERO_LOG_FILE") or None
    os.environ["VZERO_LOGS_CONFIGURED"] = "1"  # spawned helpers configure themselves too
    if verbose:
        os.environ["VZERO_VERBOSE"] = "1"
    os.environ.setdefault("WANDB_SILENT", "false" if verbose else "true")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "INFO" if verbose else "ERROR")
    # Helper processes that never call configure() (multiprocessing spawn workers of
    # checkpointing) re-import the stack: silence their import warnings. A process that does
    # call configure() resets the filters below, so its warnings still reach the log file.
    if not verbose:
        os.environ["PYTHONWARNINGS"] = "ignore"
    elif os.environ.get("PYTHONWARNINGS") == "ignore":
        del os.environ["PYTHONWARNINGS"]
    root = logging.getLogger()
    if "console" not in _STATE:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        # Holds every record until a log file is named (flushed into it then).
        held = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        held.setLevel(logging.INFO)
        root.addHandler(console)
        root.addHandler(held)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        _STATE.update(console=console, held=held)
    _set_filter(_STATE["console"], _ConsoleFilter(verbose))
    held = _STATE["held"]
    if verbose and isinstance(held, logging.handlers.MemoryHandler) and held.target is None:
        for record in held.buffer:  # what was held back before --verbose was seen
            _STATE["console"].handle(record)
    for name in SELF_HANDLED:
        _set_filter(logging.getLogger(name), _FileOnly(verbose))
    if log_file and "file" not in _STATE:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.INFO)
        held = _STATE["held"]
        assert isinstance(held, logging.handlers.MemoryHandler)
        held.setTarget(handler)
        held.flush()
        root.removeHandler(held)
        root.addHandler(handler)
        _STATE["file"] = handler
        os.environ["VZERO_LOG_FILE"] = str(Path(log_file).resolve())
