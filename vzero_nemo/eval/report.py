"""The run report: before/after held-out metrics, the training curve, sample games.

    python -m vzero_nemo.eval.report --run runs/tiny_cpu

Reads `<run>/eval_before.json`, `<run>/eval_after.json` (games with the model's own clues),
`<run>/eval_{before,after}_oracle.json` when present (scripted oracle clues: the observer
alone) and `<run>/metrics.jsonl`; writes `<run>/report.html` and `<run>/report.json` (the
numbers only).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

HEADLINE = (
    "decision_accuracy",
    "vote_accuracy",
    "na_rate",
    "invalid_vote_rate",
    "clue_format_ok_rate",
    "clue/spy_grounded_rate",
    "clue/civilian_grounded_rate",
    "clue/spy_contradicts_original_rate",
    "clue/civilian_contradicts_original_rate",
    "chance_accuracy",
)
CURVE = (
    "iteration",
    "stage",
    "game/decision_accuracy",
    "game/vote_accuracy",
    "game/na_rate",
    "spo/accuracy_ema",
    "reward/clue_spy",
    "reward/clue_civilian",
    "train/kl",
    "time/iteration_s",
)


def summarize(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for key in HEADLINE:
        b, a = before["metrics"].get(key), after["metrics"].get(key)
        rows[key] = {"before": b, "after": a, "delta": None if b is None or a is None else a - b}
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(summary: dict[str, Any]) -> list[str]:
    rows = ["<table><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>"]
    rows += [
        f"<tr><td>{key}</td><td>{_fmt(row['before'])}</td><td>{_fmt(row['after'])}</td>"
        f"<td>{_fmt(row['delta'])}</td></tr>"
        for key, row in summary.items()
    ]
    return [*rows, "</table>"]


def _load_pair(run: Path, suffix: str) -> tuple[dict, dict] | None:
    before, after = run / f"eval_before{suffix}.json", run / f"eval_after{suffix}.json"
    if not (before.exists() and after.exists()):
        return None
    return json.loads(before.read_text()), json.loads(after.read_text())


def write_report(run: Path) -> dict[str, Any]:
    pair = _load_pair(run, "")
    if pair is None:
        raise ValueError(f"{run} lacks eval_before.json / eval_after.json; run the evaluation")
    before, after = pair
    curve = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    summary = summarize(before, after)
    oracle = _load_pair(run, "_oracle")
    oracle_summary = summarize(*oracle) if oracle else None
    skills_path = run / "pretrained" / "skills.json"
    skills = json.loads(skills_path.read_text()) if skills_path.exists() else {}
    (run / "report.json").write_text(
        json.dumps(
            {"heldout": summary, "heldout_oracle_clues": oracle_summary, "pretrain_skills": skills},
            indent=1,
        )
    )
    parts = [
        "<html><head><meta charset='utf-8'><title>vzero_nemo run report</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd}pre{background:#f6f6f6;padding:6px}</style></head><body>",
        f"<h1>Run report: {html.escape(run.name)}</h1>",
        f"<p>Held-out games: {before['metrics']['games']:.0f} before, "
        f"{after['metrics']['games']:.0f} after; chance accuracy "
        f"{before['metrics']['chance_accuracy']:.2f}.</p>",
        "<h2>Held-out self-play games (the model gives the clues and votes)</h2>",
        *_table(summary),
    ]
    if oracle_summary:
        parts += ["<h2>Held-out games with scripted oracle clues (the observer alone)</h2>"]
        parts += _table(oracle_summary)
    parts.append("<h2>Pre-training skills (held out, greedy)</h2><table>")
    parts += [f"<tr><td>{k}</td><td>{_fmt(v)}</td></tr>" for k, v in skills.items()]
    parts.append("</table><h2>Training curve</h2><table><tr>")
    parts += [f"<th>{k}</th>" for k in CURVE]
    parts.append("</tr>")
    for rec in curve:
        parts.append("<tr>" + "".join(f"<td>{_fmt(rec.get(k))}</td>" for k in CURVE) + "</tr>")
    parts.append("</table><h2>Sample held-out games (after)</h2>")
    for game in after.get("transcripts", []):
        parts.append(f"<pre>{html.escape(json.dumps(game, indent=1))}</pre>")
    parts.append("</body></html>")
    (run / "report.html").write_text("\n".join(parts))
    return {"self_play": summary, "oracle_clues": oracle_summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.report")
    parser.add_argument("--run", required=True)
    args = parser.parse_args(argv)
    summaries = write_report(Path(args.run))
    for name, summary in summaries.items():
        for key, row in (summary or {}).items():
            print(f"{name:12s} {key:42s} {_fmt(row['before']):>8s} -> {_fmt(row['after']):>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
