"""Standard VLM benchmarks for a checkpoint through lmms-eval, next to the game metrics.

    python -m vzero_nemo.eval.benchmarks --weights runs/qwen7b/checkpoints/iter_0000100/dist \\
        --recipe qwen25vl_7b_1n8g --tasks chartqa,mathvista_testmini,mmmu_val \\
        --out runs/qwen7b/benchmarks/after --run runs/qwen7b --label after [key=value ...]
    python -m vzero_nemo.eval.benchmarks ... --dry-run        # print the export and command

Steps: (1) export the policy to a Hugging Face folder (`vzero_nemo.models.hf_convert`, the
same export as everywhere; for `tiny`, also the Qwen2.5-VL processor files it needs:
image-processor config and chat template); (2) run lmms-eval's `qwen2_5_vl` model class on
it, in lmms-eval's own venv (`scripts/setup_lmms_env.sh`: lmms-eval pins wandb and ruff
versions that conflict with ours); (3) write `scores.json` ({task: {metric: value}}) and,
with `--run/--label`, merge it into `<run>/benchmarks.json`, which the run report shows
before / after. `--tasks vzero_exists` is a local task built from our held-out pairs (see
`vzero_nemo.eval.lmms_task`); real benchmark data must already be in the local Hugging Face
cache (HF_HUB_OFFLINE=1: nothing is downloaded at run time).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from vzero_nemo.config import VZeroConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LMMS_PYTHON = ROOT / ".venv-lmms" / "bin" / "python"
# Qwen2.5-VL's chat template (its chat_template.json), which `vzero_nemo.models.chat` renders.
QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def processor_files(cfg: VZeroConfig) -> dict[str, Any]:
    """preprocessor_config.json of the tiny model: the arithmetic of `vzero_nemo.models.image`
    (Qwen2VLImageProcessorPil with the tiny vision tower's patch and merge sizes)."""
    from vzero_nemo.models.image import CLIP_MEAN, CLIP_STD
    from vzero_nemo.models.sizes import dims_for

    v = dims_for(cfg.model.size).vision
    return {
        "image_processor_type": "Qwen2VLImageProcessorPil",
        "processor_class": "Qwen2_5_VLProcessor",
        "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD),
        "do_convert_rgb": True, "patch_size": v.patch_size,
        "temporal_patch_size": v.temporal_patch_size, "merge_size": v.spatial_merge_size,
        "min_pixels": cfg.model.min_pixels, "max_pixels": cfg.model.max_pixels,
        "size": {"shortest_edge": cfg.model.min_pixels, "longest_edge": cfg.model.max_pixels},
    }  # fmt: skip


def load_policy(cfg: VZeroConfig, weights: str):
    """The policy stack of `cfg` holding the weights at `weights`."""
    from vzero_nemo.training import checkpoint as ckpt
    from vzero_nemo.training import engine
    from vzero_nemo.training.setup import build_stack

    stack = build_stack(cfg, with_reference=False)
    with engine.compat_scope():
        ckpt.load_weights(weights, stack.policy)
    return stack


def export(stack, cfg: VZeroConfig, out: Path) -> Path:
    """The policy as a Hugging Face Qwen2.5-VL folder that AutoProcessor loads."""
    from vzero_nemo.models.hf_convert import save_hf_checkpoint
    from vzero_nemo.training import engine

    with engine.compat_scope():
        save_hf_checkpoint(stack.policy, cfg.model, out)
    if cfg.model.size == "tiny":
        (out / "preprocessor_config.json").write_text(json.dumps(processor_files(cfg), indent=1))
        (out / "chat_template.jinja").write_text(QWEN25VL_CHAT_TEMPLATE)
        tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
        tokenizer_config["chat_template"] = QWEN25VL_CHAT_TEMPLATE
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    return out


def lmms_command(
    cfg: VZeroConfig, hf_dir: Path, tasks: list[str], out: Path, args: argparse.Namespace
) -> list[str]:
    """The lmms-eval command line for `hf_dir` (CPU unless CUDA is visible)."""
    device = "cuda" if _has_cuda() else "cpu"
    model_args = ",".join(
        f"{k}={v}"
        for k, v in dict(
            pretrained=hf_dir.resolve(), device=device, device_map=device,
            min_pixels=args.min_pixels or cfg.model.min_pixels,
            max_pixels=args.max_pixels or cfg.model.max_pixels,
        ).items()
    )  # fmt: skip
    cmd = [
        str(args.lmms_python), "-m", "lmms_eval", "--model", "qwen2_5_vl",
        "--model_args", model_args, "--tasks", ",".join(tasks), "--batch_size", "1",
        "--output_path", str((out / "lmms").resolve()), "--log_samples",
    ]  # fmt: skip
    if args.include_path:
        cmd += ["--include_path", str(Path(args.include_path).resolve())]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    return cmd


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def lmms_env() -> dict[str, str]:
    """Offline, and our worktree first on the path (the task utils import vzero_nemo)."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               WANDB_MODE="disabled", PYTHONPATH=os.pathsep.join(
                   p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))  # fmt: skip
    return env


def read_scores(lmms_out: Path) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from lmms-eval's newest `*_results.json` under `lmms_out`."""
    results = sorted(lmms_out.rglob("*results.json"), key=lambda p: p.stat().st_mtime)
    if not results:
        raise ValueError(f"lmms-eval wrote no *_results.json under {lmms_out}")
    data = json.loads(results[-1].read_text())["results"]
    return {
        task: {
            k.split(",")[0]: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and "stderr" not in k
        }
        for task, metrics in data.items()
    }


def read_answers(lmms_out: Path, task: str) -> dict[int, str]:
    """doc id -> lmms-eval's answer text, from its `--log_samples` file of `task`."""
    samples = sorted(lmms_out.rglob(f"*samples_{task}.jsonl"), key=lambda p: p.stat().st_mtime)
    if not samples:
        raise ValueError(f"lmms-eval wrote no samples file of {task} under {lmms_out}")
    out = {}
    for line in samples[-1].read_text().splitlines():
        rec = json.loads(line)
        resp = rec.get("filtered_resps") or rec.get("resps")
        while isinstance(resp, list):
            resp = resp[0]
        out[int(rec["doc_id"])] = str(resp)
    return out


def own_answers(stack, cfg: VZeroConfig, items: list[dict[str, Any]]) -> list[str]:
    """Our own greedy answers to the local task's items (our model code, tokenizer and image
    pipeline at `lmms_task.ITEM_SIZE` px), decoded as lmms-eval decodes (special tokens
    dropped)."""
    import torch
    from PIL import Image

    from vzero_nemo.eval import lmms_task
    from vzero_nemo.game.prompts import messages
    from vzero_nemo.generation.generate import generate
    from vzero_nemo.generation.sampling import SamplingParams
    from vzero_nemo.models.batch import collate_prompts
    from vzero_nemo.models.chat import render_chat

    tok = stack.tokenizer
    prompts = []
    for item in items:
        with Image.open(item["image"]) as img:
            prompts.append(
                render_chat(messages(None, item["question"]), tok, img.convert("RGB"), cfg.model)
            )
    params = SamplingParams(temperature=0.0, max_new_tokens=lmms_task.MAX_NEW_TOKENS,
                            stop_token_ids=tok.stop_ids)  # fmt: skip
    out = generate(
        stack.policy, collate_prompts(prompts, tok, cfg.model), params, torch.Generator()
    )
    return [tok.decode(ids, skip_special_tokens=True) for ids in out.token_ids]


def local_task(stack, cfg: VZeroConfig, out: Path) -> dict[str, float]:
    """Build `vzero_exists` from the held-out pairs of `data.path` into `out` and score our own
    answers: {"accuracy_ours": ..., "items": ...}."""
    from vzero_nemo.eval import lmms_task
    from vzero_nemo.eval.suite import select_games

    if cfg.data.path is None:
        raise ValueError(
            "the vzero_exists task needs data.path=DIR (its val split holds the items)"
        )
    num = cfg.eval.retention_items or 16
    pairs = {g.unit: g.pair for g in select_games(cfg.data.path, num, cfg.eval.seed)}
    items = lmms_task.write_items(list(pairs.values())[:num], out / "items", seed=cfg.eval.seed)
    lmms_task.write_task(out / "tasks", out / "items" / "items.jsonl")
    answers = own_answers(stack, cfg, items)
    scores = [lmms_task.score(a, item["answer"]) for a, item in zip(answers, items)]
    (out / "own_answers.json").write_text(json.dumps(answers, indent=1))
    return {"accuracy_ours": sum(scores) / len(scores), "items": float(len(items))}


def merge_into_run(run: Path, label: str, scores: dict[str, dict[str, float]]) -> None:
    path = run / "benchmarks.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(label, {}).update(scores)
    path.write_text(json.dumps(data, indent=1))


def build_parser() -> argparse.ArgumentParser:
    from vzero_nemo.cli import add_config_arguments

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.benchmarks")
    add_config_arguments(parser, default_recipe="tiny_cpu")
    parser.add_argument("--weights", required=True, help="weights or checkpoint dist/ folder")
    parser.add_argument("--tasks", required=True, help="comma-separated lmms-eval task names")
    parser.add_argument("--out", required=True, type=Path, help="export + lmms-eval output")
    parser.add_argument("--run", type=Path, help="merge scores into <run>/benchmarks.json")
    parser.add_argument("--label", choices=("before", "after"), help="with --run")
    parser.add_argument("--include-path", help="extra lmms-eval task folder")
    parser.add_argument("--limit", type=int, help="items per task (lmms-eval --limit)")
    parser.add_argument("--min-pixels", type=int, help="lmms-eval model_args (default: model.*)")
    parser.add_argument("--max-pixels", type=int)
    parser.add_argument("--lmms-python", type=Path, default=DEFAULT_LMMS_PYTHON)
    parser.add_argument("--dry-run", action="store_true", help="print the export and command")
    return parser


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo.cli import config_from_argv, fail
    from vzero_nemo.eval import lmms_task

    args, cfg = config_from_argv(build_parser(), argv)
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks:
        fail("--tasks is empty; name lmms-eval tasks, e.g. --tasks chartqa,mmmu_val")
    if (args.run is None) != (args.label is None):
        fail("--run and --label go together (--run RUN --label before|after)")
    if not Path(args.weights).is_dir():
        fail(f"--weights {args.weights!r} is not a checkpoint directory")
    local = lmms_task.TASK in tasks
    if local:
        if args.include_path:
            fail(f"--include-path and the local task {lmms_task.TASK} cannot be combined")
        args.include_path = str(args.out / "tasks")
        # Both sides see the 56 px items at the same pixel bounds (see vzero_nemo.eval.lmms_task).
        cfg.model.min_pixels = cfg.model.max_pixels = lmms_task.ITEM_SIZE**2
    hf_dir = args.out / "hf"
    cmd = lmms_command(cfg, hf_dir, tasks, args.out, args)
    if args.dry_run:
        print(f"[benchmarks] export: {args.weights} -> {hf_dir} (model.size={cfg.model.size})")
        if local:
            print(f"[benchmarks] local task {lmms_task.TASK}: items -> {args.out / 'items'}")
        print(f"[benchmarks] command: {shlex.join(cmd)}")
        return 0
    if not Path(args.lmms_python).exists():
        fail(f"{args.lmms_python} does not exist; run `bash scripts/setup_lmms_env.sh` first")
    stack = load_policy(cfg, args.weights)
    try:
        ours = local_task(stack, cfg, args.out) if local else {}
    except ValueError as err:
        fail(str(err))
    export(stack, cfg, hf_dir)
    subprocess.run(cmd, check=True, env=lmms_env())
    try:  # lmms-eval exits 0 after logging an error: its results file is the proof
        scores = read_scores(args.out / "lmms")
    except ValueError as err:
        fail(f"{err}; see lmms-eval's log above")
    if local:
        scores[lmms_task.TASK].update(ours)
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1))
    if args.run is not None:
        merge_into_run(args.run, args.label, scores)
    for task, metrics in scores.items():
        print(f"[benchmarks] {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
