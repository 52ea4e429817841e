"""The weights the trainer keeps at each Iterative-SPO stage switch
(`checkpoint.save_stage_switches`): where they are written and how a clue stage is found again.

Standard library only, so that launchers (the main job, the ablations) can read a run's
stages without importing the model stack.
"""

from __future__ import annotations

import sys
from pathlib import Path


def stage_switch_dir(ckpt_dir: str | Path, iteration: int, before: str, after: str) -> Path:
    """`<ckpt_dir>/stage_switches/iter_XXXXXXX_<before>_to_<after>`."""
    return Path(ckpt_dir) / "stage_switches" / f"iter_{iteration:07d}_{before}_to_{after}"


def clue_stages(ckpt_dir: Path, final: Path) -> list[tuple[Path, Path]]:
    """(weights entering, weights leaving) of every clue stage of a run, from the weights the
    trainer saved at each switch (`checkpoint.save_stage_switches`); a clue stage still
    running at the end leaves with the final weights."""
    switches = sorted((ckpt_dir / "stage_switches").glob("iter_*"))
    stages, start = [], None
    for path in switches:
        if path.name.endswith("_decision_to_clue"):
            start = path
        elif path.name.endswith("_clue_to_decision") and start is not None:
            stages.append((start, path))
            start = None
    if start is not None:
        stages.append((start, final))
    return stages


def clue_stage_eval_command(
    recipe: str, start: Path, end: Path, out: Path, overrides: list[str]
) -> list[str]:
    """`python -m vzero_nemo.eval.clue_eval` of one clue stage: the weights entering it
    (`start`) are the frozen observer and vote on the clues of `start` and of `end`."""
    return [
        sys.executable, "-m", "vzero_nemo.eval.clue_eval", "--recipe", recipe,
        "--observer", str(start), "--clues", f"before={start}", "--clues", f"after={end}",
        "--out", str(out), *overrides,
    ]  # fmt: skip
