"""The self-play run: setup, resume, iterate, log, checkpoint, stop cleanly.

    python -m vzero_nemo.train --recipe tiny_cpu            # see vzero_nemo/train.py

Stopping: SIGTERM or SIGUSR1 (Slurm's preemption warning) lets the current iteration finish,
then the run saves a checkpoint and returns; so does `train.time_budget_s` when the next
iteration would not fit. `<logging.dir>/run_state.json` says how far the run got
({"iteration", "iterations", "complete"}); job scripts read it to requeue or stop.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import torch

from vzero_nemo.config import VZeroConfig
from vzero_nemo.parallel.groups import all_reduce_max, destroy_parallel
from vzero_nemo.training import checkpoint as ckpt
from vzero_nemo.training import engine
from vzero_nemo.training.data_source import GameSource
from vzero_nemo.training.metrics_log import MetricsLogger, new_run_id
from vzero_nemo.training.setup import build_stack
from vzero_nemo.training.stage_switches import stage_switch_dir
from vzero_nemo.training.trainer import (
    Trainer,
    new_state,
    new_timers,
    resume,
    run_iteration,
    save,
)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopFlag:
    """Set by SIGTERM / SIGUSR1; the loop checks it between iterations (all ranks agree)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def agreed(self) -> bool:
        return all_reduce_max(float(self.requested), group="world") > 0


def write_run_state(cfg: VZeroConfig, iteration: int, complete: bool) -> None:
    path = Path(cfg.logging.dir) / "run_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {"iteration": iteration, "iterations": cfg.train.iterations, "complete": complete}
        )
    )
    os.replace(tmp, path)


def setup_trainer(cfg: VZeroConfig) -> Trainer:
    stack = build_stack(cfg, with_reference=True)
    assert stack.reference is not None
    assert cfg.data.path is not None and cfg.data.seed is not None
    source = GameSource(
        cfg.data.path,
        dp_rank=stack.par.dp_rank,
        dp_size=stack.par.dp_size,
        seed=cfg.data.seed,
    )
    tr = Trainer(
        cfg=cfg,
        par=stack.par,
        tokenizer=stack.tokenizer,
        policy=stack.policy,
        reference=stack.reference,
        optimizer=stack.optimizer,
        scheduler=stack.scheduler,
        source=source,
        state=new_state(cfg, new_run_id()),
        timers=new_timers(cfg),
    )
    latest = ckpt.latest_checkpoint(cfg.checkpoint.dir) if cfg.checkpoint.resume == "auto" else None
    if latest is not None:
        resharded = resume(tr, latest)
        if tr.par.is_main:
            note = f" (resharded {', '.join(resharded)})" if resharded else ""
            print(f"[vzero] resumed from {latest} at iteration {tr.state.iteration}{note}")
    else:
        from vzero_nemo.parallel.groups import broadcast_object

        tr.state.run_id = broadcast_object(tr.state.run_id)
    tr.logger = MetricsLogger(
        cfg, run_id=tr.state.run_id, resumed_iteration=tr.state.iteration, is_main=tr.par.is_main
    )
    if tr.par.is_main:
        Path(cfg.logging.dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.logging.dir) / "config.json").write_text(cfg.to_json())
    return tr


def save_stage_switch(tr: Trainer, stage: str, next_stage: str) -> None:
    """Weights at the end of a stage (collective), when the controller switches."""
    if next_stage == stage:
        return
    assert tr.cfg.checkpoint.dir is not None
    path = stage_switch_dir(tr.cfg.checkpoint.dir, tr.state.iteration, stage, next_stage)
    if path.exists():  # a resumed run repeating the iteration saved before
        return
    with engine.compat_scope():
        ckpt.save_weights(path, tr.policy)


def _progress(tr: Trainer):
    if not (tr.par.is_main and tr.cfg.logging.progress_bar):
        return None
    from tqdm import tqdm

    return tqdm(
        total=tr.cfg.train.iterations, initial=tr.state.iteration, desc="self-play", unit="it"
    )


def train(cfg: VZeroConfig) -> Trainer:
    """Run (or continue) the configured self-play training; returns the trainer."""
    if not cfg.parallel.check_collectives:
        return _train(cfg)
    from vzero_nemo.parallel.collective_check import check_collectives

    with check_collectives():
        return _train(cfg)


def _train(cfg: VZeroConfig) -> Trainer:
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    stop = StopFlag()
    stop.install()
    start = time.monotonic()
    tr = setup_trainer(cfg)
    bar = _progress(tr)
    last_saved = tr.state.iteration
    slowest_s = 0.0
    try:
        while tr.state.iteration < cfg.train.iterations:
            result = run_iteration(tr)
            if cfg.checkpoint.save_stage_switches:
                save_stage_switch(tr, result.metrics["stage"], result.metrics["next_stage"])
            assert tr.logger is not None
            tr.logger.log(result.metrics)
            slowest_s = max(slowest_s, result.metrics["time/iteration_s"])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    stage=result.metrics["stage"],
                    acc=f"{result.metrics['game/decision_accuracy']:.2f}",
                    na=f"{result.metrics['game/na_rate']:.2f}",
                )
            done = tr.state.iteration >= cfg.train.iterations
            if tr.state.iteration % cfg.checkpoint.save_interval == 0 and not done:
                save(tr)
                last_saved = tr.state.iteration
                if tr.par.is_main:
                    write_run_state(cfg, tr.state.iteration, False)
            budget = cfg.train.time_budget_s
            out_of_time = budget is not None and time.monotonic() - start + slowest_s > budget
            if not done and (stop.agreed() or all_reduce_max(float(out_of_time), "world") > 0):
                if tr.par.is_main:
                    why = stop.signal_name or "time budget"
                    print(f"[vzero] stopping at iteration {tr.state.iteration} ({why})")
                break
        if tr.state.iteration != last_saved:
            save(tr)
        if tr.par.is_main:
            write_run_state(cfg, tr.state.iteration, tr.state.iteration >= cfg.train.iterations)
    finally:
        if bar is not None:
            bar.close()
        if tr.logger is not None:
            tr.logger.close()
        stop.uninstall()
    return tr


def shutdown() -> None:
    destroy_parallel()
