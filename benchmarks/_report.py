"""Shared output of the benchmark scripts: write the JSON report atomically and print a table."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from econ_eval.io import atomic_write_json


def publish(report: dict, output: str | Path, columns: list[tuple[str, str, str]]) -> None:
    """Stamp and write ``report`` to ``output``; print ``report['rows']`` as a table.

    ``columns``: (header, row key, format spec such as ``">10.1f"``); missing values print as ``-``.
    """
    report.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_json(Path(output), report)
    widths = [max([len(h), 8] + [len(str(r.get(k))) for r in report["rows"]]) + 2 for h, k, _ in columns]
    print("\n" + "".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, ((h, _, _), w) in enumerate(zip(columns, widths))))
    for row in report["rows"]:
        cells = []
        for i, ((_, key, spec), w) in enumerate(zip(columns, widths)):
            value = row.get(key)
            text = "-" if value is None else format(value, spec) if spec else str(value)
            cells.append(f"{text:<{w}}" if i == 0 else f"{text:>{w}}")
        print("".join(cells))
    print(f"wrote {output}")


def short_commit(repo: Path) -> str | None:
    """``repo``'s checked-out commit, short (None outside a git checkout): the code a benchmark measured."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip() or None
