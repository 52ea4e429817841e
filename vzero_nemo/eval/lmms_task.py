"""A local lmms-eval task built from our held-out pairs, and its scorer (used by both sides).

`vzero_exists`: "Is there a <colour> <shape>? Use <answer></answer>." on a held-out civilians'
image, answered yes / no (half the items name an object of the image); the pre-training
probe `exists` as a benchmark item. It proves the benchmark path offline: the items, images
and task YAML are files written here, lmms-eval reads them through `--include_path`, and the
same `score` judges lmms-eval's answers and our own evaluation's answers.

Images are saved at 56 x 56 px: lmms-eval's Qwen2.5-VL class resizes every image through
qwen-vl-utils to multiples of 28 px (the 7B's patch 14 x merge 2) before the processor
resizes it again to the model's own multiple (16 px for tiny); at 56 px the first resize is
the identity, so both sides feed the model the same pixels (56 -> 48 px, bicubic).

    items = write_items(pairs, out_dir, seed=0)         # items.jsonl + PNGs
    write_task(task_dir, out_dir / "items.jsonl")       # vzero_exists.yaml + utils.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

TASK = "vzero_exists"
ITEM_SIZE = 56
MAX_NEW_TOKENS = 48
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)

TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  until: []
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
UTILS_PY = "from vzero_nemo.eval.lmms_task import doc_to_text, doc_to_visual, process_results  # noqa: F401\n"


def parse_answer(text: str) -> str:
    """The first <answer> span, lower-cased and stripped ("" when there is none)."""
    m = _ANSWER.search(text)
    return m.group(1).strip().lower() if m else ""


def score(text: str, answer: str) -> float:
    return float(parse_answer(text) == answer)


def doc_to_visual(doc: dict[str, Any]) -> list:
    from PIL import Image

    with Image.open(doc["image"]) as img:
        return [img.convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc["question"]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    return {"accuracy": score(results[0], doc["answer"])}


def write_items(pairs: list, out_dir: Path, seed: int = 0) -> list[dict[str, Any]]:
    """One item per clevr pair: question, 56 px image, yes/no answer; `items.jsonl`."""
    from PIL import Image

    from vzero_nemo.data.schema import CLEVR_COLORS, CLEVR_SHAPES

    rng = random.Random(seed)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for i, pair in enumerate(p for p in pairs if p.truth.domain == "clevr"):
        objects = pair.truth.original["objects"]
        present = {f"{o['color']} {o['shape']}" for o in objects}
        if rng.random() < 0.5:
            phrase, answer = rng.choice(sorted(present)), "yes"
        else:
            absent = [f"{c} {s}" for c in CLEVR_COLORS for s in CLEVR_SHAPES]
            phrase, answer = rng.choice([a for a in absent if a not in present]), "no"
        path = out_dir / "images" / f"item{i:04d}.png"
        pair.original.convert("RGB").resize((ITEM_SIZE, ITEM_SIZE), Image.BICUBIC).save(path)
        question = f"Is there a {phrase}? Use <answer></answer>."
        items.append(
            {"id": i, "image": str(path.resolve()), "question": question, "answer": answer}
        )
    (out_dir / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    return items


def write_task(task_dir: Path, items_path: Path) -> str:
    """The task YAML (absolute items path) and its utils module; returns the task name."""
    task_dir.mkdir(parents=True, exist_ok=True)
    yaml = TASK_YAML.format(task=TASK, items=items_path.resolve(), max_new_tokens=MAX_NEW_TOKENS)
    (task_dir / f"{TASK}.yaml").write_text(yaml)
    (task_dir / "utils.py").write_text(UTILS_PY)
    return TASK
