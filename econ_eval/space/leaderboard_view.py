"""The Leaderboard tab: rows of ``results/leaderboard.json``, filtered and sorted."""

from __future__ import annotations

from pathlib import Path

from .. import config, tasks
from ..io import DataError, read_json

#: one column per leaderboard task of the registry, between the system's names and its average
BOARD_TASKS = tasks.names(on_leaderboard=True)
LEADERBOARD_COLUMNS = ["system", "method", *BOARD_TASKS, "normalised_average", "tasks_scored"]
_AVERAGE = LEADERBOARD_COLUMNS.index("normalised_average")


def leaderboard_rows(results: Path | None = None) -> list[list]:
    """Rows of ``results/leaderboard.json`` (headline score per task), best normalised average first."""
    path = (results or config.results_dir()) / "leaderboard.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; build it with `econ-eval leaderboard build`")
    doc = read_json(path, what="leaderboard")
    rows = []
    for r in doc["rows"]:
        score = {t: r["metrics"].get(t, {}).get("score") for t in BOARD_TASKS}
        rows.append([r["system"], r["method"], *[None if v is None else round(v, 4) for v in score.values()],
                     r.get("normalised_average"), r.get("tasks_scored")])
    rows.sort(key=lambda row: -(row[_AVERAGE] if row[_AVERAGE] is not None else -1e9))
    return rows


def filter_rows(rows: list[list], query: str = "", sort_by: str = "normalised_average") -> list[list]:
    """Rows whose system or method contains ``query``, sorted descending by ``sort_by`` (missing last)."""
    q = (query or "").strip().lower()
    kept = [r for r in rows if not q or q in str(r[0]).lower() or q in str(r[1]).lower()]
    col = LEADERBOARD_COLUMNS.index(sort_by) if sort_by in LEADERBOARD_COLUMNS else _AVERAGE
    if col <= 1:
        return sorted(kept, key=lambda r: str(r[col]))
    return sorted(kept, key=lambda r: (r[col] is None, -(r[col] or 0)))
