"""The run report: one self-contained HTML file (figures embedded, opens from disk offline).

    python -m vzero_nemo.eval.report --run runs/tiny_cpu

Reads from the run folder:
- `eval/before`, `eval/after` (required) and `eval/before_oracle`, `eval/after_oracle`
  (optional): folders of `python -m vzero_nemo.eval run` on the same held-out games;
- `metrics.jsonl` and `config.json` of the self-play run; `command.txt`, `main_job_times.json`
  when the main job wrote them; `clue_eval*.json` (clues judged by a frozen observer) and
  `benchmarks.json` (`python -m vzero_nemo.eval.benchmarks`) when present.
Writes `report.html` (jinja2 template `templates/report.html.j2`), the same figures as PNG
files under `figures/`, and `report.json` (every number of the summary card).

Summary: each rate before / after with its 95 % Wilson interval, the paired bootstrap change
with its interval and the number of games (pairs) behind it, per domain and per role; the
retention probes of the pre-training skills, with a warning for any skill whose change lies
wholly below zero.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jinja2

from vzero_nemo.eval import figures
from vzero_nemo.eval import suite as S
from vzero_nemo.eval.report_inputs import load_benchmarks, load_clue_evals, load_metrics

TEMPLATES = Path(__file__).parent / "templates"
LABELS = {
    "decision_accuracy": "decision accuracy (per game)",
    "vote_accuracy": "vote accuracy (per vote)",
    "na_rate": "N/A rate (per vote)",
    "invalid_vote_rate": "invalid votes (per vote)",
    "clue_format_ok_rate": "well-formed clues",
    "clue_grounded_rate": "clues naming an object of own image",
    "clue_contradicts_original_rate": "clues contradicting the civilians' image",
    "votes_received_rate": "share of valid votes received",
    "clue_reward": "mean clue reward",
}


def fmt_rate(row: dict[str, float] | None) -> str:
    if not row or not math.isfinite(row.get("value", math.nan)):
        return "-"
    if not math.isfinite(row["lo"]):
        return f"{row['value']:.3f}"
    return f"{row['value']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def fmt_change(row: dict[str, float] | None) -> tuple[str, str]:
    """Text and CSS class (up / down when the interval excludes 0)."""
    if not row or not math.isfinite(row.get("delta", math.nan)):
        return "-", ""
    if not math.isfinite(row["lo"]):
        return f"{row['delta']:+.3f}", ""
    direction = "up" if row["lo"] > 0 else "down" if row["hi"] < 0 else ""
    return f"{row['delta']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]", direction


def _row(label: str, before: dict | None, after: dict | None, change: dict | None, n: str):
    text, direction = fmt_change(change)
    return {
        "label": label,
        "before": fmt_rate(before),
        "after": fmt_rate(after),
        "change": text,
        "direction": direction,
        "n": n,
    }


def game_table(title: str, before: dict, after: dict, changes: dict) -> dict[str, Any]:
    """Overall rates, then decision accuracy per domain, of two evaluations."""
    b, a = before["summary"], after["summary"]
    n = f"{b['overall']['games']} games / {b['units']} pairs"
    rows = [
        _row(LABELS[k], b["overall"][k], a["overall"][k], changes["overall"][k], n)
        for k in S.GAME_RATES
    ]
    for group, brows in b["groups"].items():
        rows.append(
            _row(
                f"decision accuracy: {group}",
                brows["decision_accuracy"],
                a["groups"].get(group, {}).get("decision_accuracy"),
                changes["groups"].get(group, {}).get("decision_accuracy"),
                f"{brows['games']} games",
            )
        )
    return {"title": title, "rows": rows, "note": ""}


def role_table(before: dict, after: dict, changes: dict) -> dict[str, Any]:
    b, a = before["summary"]["roles"], after["summary"]["roles"]
    rows = []
    for role in S.ROLES:
        for key in (*S.ROLE_RATES, "clue_reward"):
            n = b[role][key]["den"]
            unit = (
                "seats" if key == "clue_reward" else "votes" if key.startswith("votes") else "clues"
            )
            rows.append(
                _row(
                    f"{role}: {LABELS[key]}",
                    b[role][key],
                    a[role][key],
                    changes["roles"][role].get(key),
                    f"{n:.0f} {unit}",
                )
            )
    note = (
        "Grounded: the clue names a colour and shape of an object in the speaker's own image "
        "(clevr). Rewards: Eq. 1 of the paper; intervals of means are normal approximations."
    )
    return {"title": "Per role (held-out games, the model's own clues)", "rows": rows, "note": note}


def retention_table(before: dict, after: dict, changes: dict) -> dict[str, Any] | None:
    b, a = before["summary"].get("skills", {}), after["summary"].get("skills", {})
    if not b:
        return None
    rows = [
        _row(
            f"skill: {name}",
            b[name],
            a.get(name),
            changes["skills"].get(name),
            f"{b[name]['items']} items",
        )
        for name in b
    ]
    note = (
        "Retention probes: the pre-training skills (greedy, held-out pairs) before and after "
        "self-play. A change whose interval lies wholly below 0 means self-play cost that skill."
    )
    return {
        "title": "Retention of pre-training skills (negative transfer)",
        "rows": rows,
        "note": note,
    }


def retention_warnings(changes: dict) -> list[str]:
    out = []
    for name, change in changes["skills"].items():
        if S.is_significant_drop(change):
            text, _ = fmt_change(change)
            out.append(
                f"Retention: the {name} skill dropped by {text} over {change['items']} held-out "
                "items (interval wholly below 0): self-play lost part of a pre-training skill."
            )
    return out


def headline(before: dict, after: dict, changes: dict) -> list[dict[str, str]]:
    b, a = before["summary"], after["summary"]
    acc_b, acc_a = b["overall"]["decision_accuracy"], a["overall"]["decision_accuracy"]
    change = changes["overall"]["decision_accuracy"]
    text, _ = fmt_change(change)
    return [
        {"label": "decision accuracy before", "value": f"{acc_b['value']:.3f}",
         "detail": f"95% CI [{acc_b['lo']:.3f}, {acc_b['hi']:.3f}]"},
        {"label": "decision accuracy after", "value": f"{acc_a['value']:.3f}",
         "detail": f"95% CI [{acc_a['lo']:.3f}, {acc_a['hi']:.3f}]"},
        {"label": "change (paired bootstrap)", "value": text.split(" ")[0],
         "detail": f"95% CI {' '.join(text.split(' ')[1:])}"},
        {"label": "held-out games", "value": str(b["overall"]["games"]),
         "detail": f"{b['units']} pairs; chance {b['chance_accuracy']:.2f}"},
    ]  # fmt: skip


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _side(title: str, sample: dict[str, Any]) -> dict[str, Any]:
    outcome = sample["outcome"]
    clues: dict[int, list[str]] = {}
    for c in sample["clues"]:
        clues.setdefault(c["player"], []).append(
            c["clue"] if c["clue"] is not None else "(unparseable)"
        )
    votes = [v["vote"] for v in sample["votes"]]
    counted = Counter(v for v in votes if isinstance(v, int))
    spies = sample["spy_players"]
    credit = outcome["decision_credit"]
    return {
        "title": title,
        "spy": ", ".join(map(str, spies)),
        "correct": credit >= 0.5,
        "outcome": f"spy found (credit {credit:.2f})" if credit > 0 else "spy not found",
        "players": [
            {
                "player": p["player"],
                "role": p["role"],
                "clue": " / ".join(clues.get(p["player"], [])),
                "votes": outcome["votes_received"][p["player"] - 1],
                "reward": f"{outcome['clue_rewards'][p['player'] - 1]:+.3f}",
            }
            for p in sample["players"]
        ],
        "votes": ", ".join(f"player {k}: {n}" for k, n in sorted(counted.items())) or "none valid",
        "na": sum(v == "N/A" for v in votes),
        "invalid": sum(v is None for v in votes),
        "reasoning": sample["votes"][0]["completion"] if sample["votes"] else "",
    }


def game_views(before_dir: Path, after_dir: Path, fig_dir: Path) -> list[dict[str, Any]]:
    """Sample games played both before and after, with their image pair."""
    from PIL import Image

    b = {s["game_index"]: s for s in json.loads((before_dir / "samples.json").read_text())}
    a = {s["game_index"]: s for s in json.loads((after_dir / "samples.json").read_text())}
    views = []
    for index in sorted(set(b) & set(a)):
        sample = b[index]
        with (
            Image.open(before_dir / sample["images"]["original"]) as orig,
            Image.open(before_dir / sample["images"]["modified"]) as mod,
        ):
            scale = max(1, round(200 / max(orig.size)))
            png = figures.pair_image(orig, mod, sample["changes"], scale=scale)
        (fig_dir / f"game_{index:04d}.png").write_bytes(png)
        views.append(
            {
                "index": index,
                "spy": ", ".join(map(str, sample["spy_players"])),
                "image": _b64(png),
                "sides": [_side("before", b[index]), _side("after", a[index])],
            }
        )
    return views


def _command(run: Path, config: dict[str, Any]) -> str:
    path = run / "command.txt"
    if path.exists():
        return path.read_text().strip()
    return f"python -m vzero_nemo.train --recipe {config.get('recipe', '?')} logging.dir={run}"


def _figures(run: Path, records: list[dict], config: dict[str, Any], chance: float) -> list[dict]:
    fig_dir = run / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    spo = config.get("spo", {})
    pngs = figures.curve_pngs(records, spo if spo.get("schedule") != "alternate" else {}, chance)
    for name, png in pngs.items():
        (fig_dir / f"{name}.png").write_bytes(png)
    return [{"name": name, "b64": _b64(png)} for name, png in pngs.items()]


def _eval_pair(run: Path, suffix: str) -> tuple[dict, dict, dict] | None:
    before, after = run / "eval" / f"before{suffix}", run / "eval" / f"after{suffix}"
    if not ((before / "summary.json").exists() and (after / "summary.json").exists()):
        return None
    return S.load_result(before), S.load_result(after), S.compare(before, after)


def build_context(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's context and the numbers of report.json."""
    own = _eval_pair(run, "")
    if own is None:
        raise ValueError(
            f"{run} lacks eval/before and eval/after; run `python -m vzero_nemo.eval run` with "
            "the initial and the final weights (--out <run>/eval/before, <run>/eval/after)"
        )
    before, after, changes = own
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    records = load_metrics(run)
    tables = [game_table("Held-out games, the model's own clues", *own), role_table(*own)]
    oracle = _eval_pair(run, "_oracle")
    if oracle is not None:
        title = "Held-out games with scripted oracle clues (the observer alone)"
        tables.append(game_table(title, *oracle))
    retention = retention_table(*own)
    if retention is not None:
        tables.append(retention)
    times_path = run / "main_job_times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    context = {
        "run_name": run.resolve().name,
        "recipe": config.get("recipe", "?"),
        "iterations": len(records),
        "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "headline": headline(*own),
        "warnings": retention_warnings(changes),
        "tables": tables,
        "clue_eval": load_clue_evals(run),
        "benchmarks": load_benchmarks(run),
        "figures": _figures(run, records, config, before["summary"]["chance_accuracy"]),
        "games": game_views(run / "eval" / "before", run / "eval" / "after", run / "figures"),
        "command": _command(run, config),
        "times": [(k, f"{v:.0f}") for k, v in times.items()],
        "config": json.dumps(config, indent=1),
    }
    numbers = {
        "before": before["summary"],
        "after": after["summary"],
        "changes": changes,
        "oracle_changes": oracle[2] if oracle else None,
        "warnings": context["warnings"],
    }
    return context, numbers


def markdown_tables(context: dict[str, Any]) -> str:
    """The summary card's tables as markdown (for docs/results)."""
    lines = []
    for table in context["tables"]:
        lines += [f"### {table['title']}", "", "| metric | before [95% CI] | after [95% CI] | "
                  "change [paired 95% CI] | n |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {r['label']} | {r['before']} | {r['after']} | {r['change']} | {r['n']} |"
            for r in table["rows"]
        ]
        lines.append("")
    lines += [f"Warning: {w}" for w in context["warnings"]]
    return "\n".join(lines) + "\n"


def write_report(run: Path, markdown: Path | None = None) -> dict[str, Any]:
    """Write report.html, report.json and figures/*.png into `run` (and the summary tables to
    `markdown`); returns report.json."""
    context, numbers = build_context(run)
    if markdown is not None:
        markdown.write_text(markdown_tables(context))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    html = env.get_template("report.html.j2").render(**context)
    (run / "report.html").write_text(html, encoding="utf-8")
    (run / "report.json").write_text(json.dumps(numbers, indent=1))
    return numbers


def main(argv: list[str] | None = None) -> int:
    from vzero_nemo import logs

    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.report")
    parser.add_argument("--run", required=True, help="run folder (eval/, metrics.jsonl, ...)")
    parser.add_argument("--markdown", type=Path, help="also write the summary tables here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logs.configure(verbose=args.verbose or None)
    try:
        numbers = write_report(Path(args.run), args.markdown)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, row in numbers["changes"]["overall"].items():
        text, _ = fmt_change(row)
        print(f"[report] {name:22s} {fmt_rate(numbers['before']['overall'][name]):>24s} -> "
              f"{fmt_rate(numbers['after']['overall'][name]):>24s}  change {text}")  # fmt: skip
    for name, row in numbers["changes"]["skills"].items():
        print(f"[report] skill {name:16s} change {fmt_change(row)[0]} ({row['items']} items)")
    for warning in numbers["warnings"]:
        print(f"[report] WARNING {warning}")
    print(f"[report] {Path(args.run) / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
