"""The Leaderboard tab: rows of ``results/leaderboard.json``, filtered and sorted."""

from __future__ import annotations

from pathlib import Path

from .. import config, tasks
from ..io import DataError, read_json

#: one column per leaderboard task of the registry (score and 95% interval), then the two averages
BOARD_TASKS = tasks.names(on_leaderboard=True)
LEADERBOARD_COLUMNS = ["rank", "system", "method", *BOARD_TASKS, "common_average", "normalised_average",
                       "tasks_scored"]
_RANK = LEADERBOARD_COLUMNS.index("rank")


def leaderboard_rows(results: Path | None = None) -> list[list]:
    """Rows of ``results/leaderboard.json`` in its rank order (the average over the tasks every system has);
    each task cell is the headline score with its 95% interval."""
    from ..leaderboard import headline_cell

    path = (results or config.results_dir()) / "leaderboard.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; build it with `econ-eval leaderboard build`")
    doc = read_json(path, what="leaderboard")
    rows = []
    for i, r in enumerate(doc["rows"], 1):
        cells = [headline_cell(r, t) if t in r["metrics"] else None for t in BOARD_TASKS]
        rows.append([r.get("rank", i), r["system"], r["method"], *cells, r.get("common_average"),
                     r.get("normalised_average"), r.get("tasks_scored")])
    return rows


def cell_value(cell) -> float | None:
    """The number a table cell sorts by (a task cell's score before its interval)."""
    if cell is None or cell == "–":
        return None
    if isinstance(cell, str):
        return float(cell.split()[0])
    return float(cell)


def filter_rows(rows: list[list], query: str = "", sort_by: str = "rank") -> list[list]:
    """Rows whose system or method contains ``query``, sorted by ``sort_by`` (rank ascending, names
    alphabetically, scores descending with missing ones last)."""
    q = (query or "").strip().lower()
    kept = [r for r in rows if not q or q in str(r[1]).lower() or q in str(r[2]).lower()]
    col = LEADERBOARD_COLUMNS.index(sort_by) if sort_by in LEADERBOARD_COLUMNS else _RANK
    if col == _RANK:
        return sorted(kept, key=lambda r: r[_RANK])
    if col <= 2:
        return sorted(kept, key=lambda r: str(r[col]))
    return sorted(kept, key=lambda r: (cell_value(r[col]) is None, -(cell_value(r[col]) or 0)))
