"""One place for the files of a run folder (what ``lm_eval --output_path --log_samples`` writes, and ours).

A run folder holds, per run, files that share one timestamp ``STAMP`` (lm-eval's ``%Y-%m-%dT%H-%M-%S.%f``):

- ``results_STAMP.json``          lm-eval's results (or a baseline's, in the same shape)
- ``samples_TASK_STAMP.jsonl``    lm-eval's logged samples, one file per task
- ``system_STAMP.json``           what ``econ-eval evaluate`` evaluated and how
- ``judge_MODEL_STAMP.json``, ``ragas_TAG_STAMP.json``   scores added afterwards (their own stamps)

Everything that names, finds or writes these files goes through here; writes are atomic and never
replace an existing file.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .io import atomic_write_json, atomic_write_jsonl

_STAMP = r"\d{4}-\d{2}-\d{2}T[\d\-.]+"
_SAMPLES_RE = re.compile(rf"^samples_(?P<task>.+)_(?P<stamp>{_STAMP})\.jsonl$")
_RESULTS_RE = re.compile(rf"^results_(?P<stamp>{_STAMP})\.json$")


def new_stamp() -> str:
    """A timestamp in lm-eval's file-name format (UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")


def stamp_of(results_file: Path | str) -> str:
    """The timestamp of a ``results_STAMP.json`` file name."""
    name = Path(results_file).name
    m = _RESULTS_RE.match(name)
    if not m:
        raise ValueError(f"{name}: not an lm-eval results file name (results_<timestamp>.json)")
    return m["stamp"]


def results_files(folder: Path | str, *, recursive: bool = False) -> list[Path]:
    """The ``results_*.json`` files of a folder, oldest first (by their timestamps)."""
    folder = Path(folder)
    found = folder.rglob("results_*.json") if recursive else folder.glob("results_*.json")
    return sorted((p for p in found if _RESULTS_RE.match(p.name)), key=lambda p: p.name)


def newest_results(folder: Path | str) -> Path | None:
    """The newest ``results_*.json`` of a folder, or None."""
    files = results_files(folder)
    return files[-1] if files else None


def samples_file(results_file: Path | str, task: str) -> Path:
    """The samples file of ``task`` that belongs to a results file (it may not exist)."""
    results_file = Path(results_file)
    return results_file.parent / f"samples_{task}_{stamp_of(results_file)}.jsonl"


def system_file(results_file: Path | str) -> Path:
    """The ``system_STAMP.json`` that belongs to a results file (it may not exist)."""
    results_file = Path(results_file)
    return results_file.parent / f"system_{stamp_of(results_file)}.json"


def newest_samples(folder: Path | str) -> dict[str, Path]:
    """The newest ``samples_<task>_*.jsonl`` per task in a folder, by task name."""
    newest: dict[str, tuple[str, Path]] = {}
    for path in Path(folder).glob("samples_*.jsonl"):
        m = _SAMPLES_RE.match(path.name)
        if m and (m["task"] not in newest or m["stamp"] > newest[m["task"]][0]):
            newest[m["task"]] = (m["stamp"], path)
    return {task: path for task, (_, path) in sorted(newest.items())}


def write_results(folder: Path | str, stamp: str, results: dict, samples: dict[str, list[dict]]) -> Path:
    """Write a results document and its per-task samples (a baseline's run); return the results path."""
    folder = Path(folder)
    path = atomic_write_json(folder / f"results_{stamp}.json", results, overwrite=False)
    for task, rows in samples.items():
        atomic_write_jsonl(folder / f"samples_{task}_{stamp}.jsonl", rows)
    return path


def write_system(results_file: Path | str, record: dict) -> Path:
    """Write the ``system_STAMP.json`` of a results file (never over an existing one)."""
    return atomic_write_json(system_file(results_file), record, overwrite=False)


def write_scores(folder: Path | str, kind: str, tag: str, report: dict[str, Any], stamp: str) -> Path:
    """Write a ``judge_TAG_STAMP.json`` / ``ragas_TAG_STAMP.json`` report (never over an existing one)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", tag).strip("-") or kind
    return atomic_write_json(Path(folder) / f"{kind}_{safe}_{stamp}.json", report, overwrite=False)
