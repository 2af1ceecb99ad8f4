"""Training data: prompt/completion pairs from the bundle's TRAIN splits, built with the task prompts.

Rows are conversational (``prompt`` = a user message, ``completion`` = the assistant answer), so TRL
applies the model's chat template exactly as ``lm_eval --apply_chat_template`` does, and computes the
loss on the completion only. Only train splits are read: no test or validation paper can leak in
(the bundle's split-by-paper guarantees that across tasks).
"""

from __future__ import annotations

from pathlib import Path

from .. import tasks
from ..prompts import clip_text
from ..data.build import _order_key
from ..io import read_jsonl
from .recipe import Recipe


def _round_robin_by_label(order: list[int], rows: list[dict], task: str) -> list[int]:
    """Reorder so labels alternate (rare labels are not drowned by a cap); each label keeps its order."""
    key = tasks.task(task).label_field
    groups: dict = {}
    for i in order:
        groups.setdefault(rows[i].get(key), []).append(i)
    out, queues = [], [groups[k] for k in sorted(groups, key=str)]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


#: The long text fields of the bundle's documents (abstracts, news stories) that ``max_chars`` clips.
LONG_FIELDS = ("abstract", "text")


def clip_doc(doc: dict, max_chars: int | None) -> dict:
    """``doc`` with its abstract / story cut to ``max_chars`` at a word boundary (the prompt builders' clip)."""
    if not max_chars:
        return doc
    return {k: clip_text(v, max_chars) if k in LONG_FIELDS and isinstance(v, str) else v for k, v in doc.items()}


def _example(task: str, doc: dict) -> dict:
    spec = tasks.task(task)
    return {"prompt": [{"role": "user", "content": spec.prompt(doc)}],
            "completion": [{"role": "assistant", "content": spec.target(doc)}],
            "task": task}


def validation_rows(bundle: Path, recipe: Recipe) -> list[dict]:
    """The recipe's held-out loss set: the first N rows (seeded order) of each task's VALIDATION split.

    The mixture's ``max_chars`` applies here too, so training and validation losses are comparable.
    """
    out = []
    for task, n in (recipe.econ.validation or {}).items():
        rows = read_jsonl(Path(bundle) / task / "validation.jsonl")
        order = sorted(range(len(rows)), key=lambda i: _order_key(recipe.training.seed, f"val:{task}:{i}"))
        max_chars = ((recipe.econ.mixture or {}).get(task) or {}).get("max_chars")
        out += [_example(task, clip_doc(rows[i], max_chars)) for i in order[:n]]
    return out


def mixture_rows(bundle: Path, recipe: Recipe) -> list[dict]:
    """The training rows of a recipe's mixture: per-task caps, weights, seeded order, interleaved.

    ``max_chars`` (per task) clips abstracts / stories before the prompt is built: shorter examples,
    more of them per CPU minute (the task prompts at evaluation see the full text).
    """
    per_task = {}
    for task, spec in recipe.econ.mixture.items():
        spec = spec or {}
        weight = float(spec.get("weight", 1.0))
        if weight == 0:
            continue
        rows = read_jsonl(Path(bundle) / task / "train.jsonl")
        order = sorted(range(len(rows)), key=lambda i: _order_key(recipe.training.seed, f"{task}:{i}"))
        if spec.get("balance_labels"):
            order = _round_robin_by_label(order, rows, task)
        cap = spec.get("max_examples")
        n = min(len(rows), int(cap) if cap is not None else len(rows))
        max_chars = spec.get("max_chars")
        per_task[task] = [_example(task, clip_doc(rows[i], max_chars)) for i in order[:n]]
        per_task[task] = per_task[task] * max(1, int(round(weight))) if weight >= 1 else \
            per_task[task][: max(1, int(len(per_task[task]) * weight))]
    # interleave tasks by a seeded hash so every batch sees a mix
    flat = [r for rows in per_task.values() for r in rows]
    mixed = [r for _, r in sorted(((_order_key(recipe.training.seed, f"mix:{i}"), r) for i, r in enumerate(flat)),
                                  key=lambda pair: pair[0])]
    if recipe.econ.max_examples is not None:
        mixed = mixed[: recipe.econ.max_examples]
    return mixed
