"""Readable tables from lm-eval results files: one column per system, one row per task metric."""

from __future__ import annotations

import math
from pathlib import Path

from . import tasks
from .evaluate import SUITE_TASKS, load_results

#: metrics shown per task, headline first (the rest of lm-eval's output stays in the JSON): the registry's
TASK_METRICS = {t.name: list(t.metrics) for t in tasks.TASKS.values()}
#: lm-eval groups whose mean headline score gets a row: the full suite, its quick subsets, the finance core
GROUPS = ("econ", "econlite", "econfin")


def task_metrics(results: dict, task: str) -> dict[str, tuple[float, float | None]]:
    """``{metric: (value, stderr)}`` of one task, whatever lm-eval filter name the task used."""
    out = {}
    for key, value in results["results"].get(task, {}).items():
        if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
            continue
        metric, filt = key.split(",", 1)
        se = results["results"][task].get(f"{metric}_stderr,{filt}")
        out[metric] = (float(value), float(se) if isinstance(se, (int, float)) else None)
    return out


def _fmt(v: tuple[float, float | None] | None) -> str:
    if v is None or v[0] is None or (isinstance(v[0], float) and math.isnan(v[0])):
        return "–"
    value, se = v
    return f"{value:.4f} ± {se:.4f}" if se is not None and not math.isnan(se) else f"{value:.4f}"


def format_table(named_results: list[tuple[str, dict]]) -> str:
    """A Markdown table comparing systems; the ``econ`` row is the mean of the task headline scores."""
    names = [n for n, _ in named_results]
    lines = ["| task | metric | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    tasks = [t for t in list(TASK_METRICS) if any(t in r["results"] for _, r in named_results)]
    for task in tasks:
        for i, metric in enumerate(TASK_METRICS[task]):
            cells = [_fmt(task_metrics(r, task).get(metric)) for _, r in named_results]
            label = f"**{metric}**" if i == 0 else metric
            lines.append(f"| {task if i == 0 else ''} | {label} | " + " | ".join(cells) + " |")
    for group in GROUPS:
        if any(group in r["results"] for _, r in named_results):
            cells = [_fmt(task_metrics(r, group).get("score")) for _, r in named_results]
            lines.append(f"| **{group}** | mean headline score | " + " | ".join(cells) + " |")
    n = {t: r.get("n-samples", {}).get(t, {}).get("effective") for _, r in named_results[:1] for t in tasks}
    lines.append("")
    lines.append("Test documents per task: " + ", ".join(f"{t} {n[t]}" for t in tasks if n.get(t) is not None))
    return "\n".join(lines)


def table_from_files(paths: list[Path], names: list[str] | None = None) -> str:
    """Load results files and format them side by side."""
    names = names or [Path(p).parent.name for p in paths]
    return format_table([(n, load_results(p)) for n, p in zip(names, paths)])


def missing_tasks(results: dict) -> list[str]:
    """Suite tasks absent from a results file."""
    return [t for t in SUITE_TASKS if t not in results["results"]]


def _cmd_report(args) -> int:
    print(table_from_files([Path(p) for p in args.results], args.names.split(",") if args.names else None))
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    r = sub.add_parser("report", help="print results files side by side")
    r.add_argument("results", nargs="+", help="lm-eval results_*.json files")
    r.add_argument("--names", help="comma-separated column names (default: the folder names)")
    r.set_defaults(func=_cmd_report)
