"""Small, careful file helpers: atomic writes, JSON Lines, hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


class DataError(ValueError):
    """Bad or missing input; the message names the file, the field and the fix."""


class RunRejected(ValueError):
    """A run that may not enter the leaderboard; the message says why."""


class Interrupted(Exception):
    """Stopped by Ctrl-C after saving what was done; the message says what was kept and where."""


def atomic_write_bytes(path: Path | str, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename, so readers never see half a file.

    With ``overwrite=False`` an existing file is never replaced (``FileExistsError``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite it (choose another name or delete it)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the target appeared meanwhile: no silent overwrite even under a race.
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path | str, text: str, *, overwrite: bool = True) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: Path | str, obj: Any, *, overwrite: bool = True) -> Path:
    """Atomically write pretty, key-sorted JSON (stable bytes for stable hashes)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                             overwrite=overwrite)


def jsonl_dumps(rows: Iterable[dict]) -> str:
    """Serialise rows as JSON Lines with sorted keys (deterministic bytes)."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def atomic_write_jsonl(path: Path | str, rows: Iterable[dict]) -> Path:
    """Atomically write rows as JSON Lines."""
    return atomic_write_text(path, jsonl_dumps(rows))


def read_jsonl(path: Path | str) -> list[dict]:
    """Read JSON Lines; a bad line raises :class:`DataError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove that line") from exc
    return rows


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path | str, *, what: str = "JSON file") -> Any:
    """Read a JSON file; a missing or invalid file raises :class:`DataError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {what} is not UTF-8 text ({exc.reason}); restore or regenerate the file") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                        "restore or regenerate the file") from exc
