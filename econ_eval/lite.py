"""The quick suite ``econlite``: seeded, stratified subsets of every ``econ`` task's test split.

For first results in minutes, not half an hour. Each lite task (``econlite_<name>``, outside the ``econ_*``
wildcard, which keeps meaning the full suite) is its full task with ``process_docs`` keeping
:data:`LITE_SIZES` documents of the test split: strata (the gold label of a classification, the question
type of QA, the subject of MMLU, before/after 2020 for titles) get seats in proportion to their size
(largest remainders), and each stratum's documents are taken in a seeded order (:data:`LITE_SEEDS`).
A generation task whose multiple-choice twin is in the quick suite draws from the twin's lite documents
(:func:`lite_pool`), so econ-hf answers it during the twin's log-likelihood pass over the same prompts.
The order of the kept documents is the test split's.

Lite scores are first looks, not results: the leaderboard refuses lite runs (as it refuses ``--limit``),
and ``benchmarks/lite_agreement.py`` checks, on every published system's logged samples, whether each
lite score falls inside the full test set's 95% interval.
"""

from __future__ import annotations

import hashlib
import json

from . import tasks

#: the quick suite's group and task-name prefix
LITE_GROUP = "econlite"
LITE_PREFIX = tasks.LITE_PREFIX
#: documents kept per full task (the suite's test sizes: titles 700, classify 700, QA 507, signal 750, MMLU 742, FOMC 425).
#: classify and signal keep 150 (200 before): their ~265-token abstracts and stories were 80% of the quick
#: suite's log-likelihood tokens, the critical path of `make quickstart`.
LITE_SIZES = {
    "econ_titles": 60,
    "econ_classify": 150,
    "econ_classify_gen": 80,
    "econ_qa": 60,
    "econ_signal": 150,
    "econ_signal_gen": 80,
    "econ_mmlu": 100,
    "econ_fomc": 100,
    "econ_fomc_gen": 60,
}
#: the sampling seed of each task's subset: among seeds 0-199, the one whose subset reproduces the published
#: systems' full scores best (smallest worst-case distance in standard errors; `benchmarks/lite_agreement.py
#: --select`), the way tinyBenchmarks picks anchor items from existing models' results. Systems published
#: after the selection check it out of sample (results/benchmarks/lite_agreement.json).
LITE_SEEDS = {"econ_titles": 116, "econ_classify": 87, "econ_classify_gen": 101, "econ_qa": 192, "econ_signal": 0,
              "econ_signal_gen": 0, "econ_mmlu": 10,
              "econ_fomc": 14, "econ_fomc_gen": 30}


def lite_name(task: str) -> str:
    """``econ_classify`` -> ``econlite_classify``."""
    return LITE_PREFIX + task.removeprefix("econ_")


def full_name(lite_task: str) -> str:
    """``econlite_classify`` -> ``econ_classify``."""
    return "econ_" + lite_task.removeprefix(LITE_PREFIX)


def is_lite(task: str) -> bool:
    """True for the quick suite's group or one of its tasks."""
    return task.startswith(LITE_PREFIX) or task == LITE_GROUP


def stratum(spec: tasks.TaskSpec, doc: dict) -> str:
    """The stratum a document is sampled in."""
    if spec.label_field:
        return str(doc[spec.label_field])
    if "type" in doc:  # QA question types
        return str(doc["type"])
    if "subject" in doc:  # MMLU subjects
        return str(doc["subject"])
    if "created" in doc:  # arXiv papers: the time axis
        return "2020+" if str(doc["created"])[:4] >= "2020" else "<2020"
    return ""


def _doc_key(doc: dict) -> str:
    ident = doc.get("qa_id", doc.get("paper_id", doc.get("id")))
    if ident is not None:
        return str(ident)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _order(seed: int, task: str, doc: dict) -> str:
    return hashlib.sha256(f"{seed}:lite:{task}:{_doc_key(doc)}".encode()).hexdigest()


def lite_pool(task: str, docs: list[dict]) -> list[int]:
    """The test indices ``task``'s lite subset is drawn from: a generation task with a lite multiple-choice twin
    (``econ_classify_gen`` and ``econ_classify``) draws from the twin's lite documents, so that econ-hf answers
    every one of its requests during the twin's log-likelihood pass over the same prompts instead of computing
    the prompt again; other tasks from the whole test split."""
    twin = tasks.multiple_choice_twin(task)
    return lite_indices(twin, docs) if twin in LITE_SIZES else list(range(len(docs)))


def lite_indices(task: str, docs: list[dict], size: int | None = None, seed: int | None = None) -> list[int]:
    """Indices (in test order) of the documents the lite version of ``task`` keeps (from :func:`lite_pool`)."""
    spec = tasks.task(task)
    pool = lite_pool(task, docs)
    n = min(size if size is not None else LITE_SIZES[task], len(pool))
    seed = LITE_SEEDS[task] if seed is None else seed
    groups: dict[str, list[int]] = {}
    for i in pool:
        groups.setdefault(stratum(spec, docs[i]), []).append(i)
    for key in groups:
        groups[key].sort(key=lambda i: _order(seed, task, docs[i]))
    exact = {k: n * len(v) / len(pool) for k, v in groups.items()}
    seats = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - seats[k]), k))[: n - sum(seats.values())]:
        seats[k] += 1  # largest remainders
    return sorted(i for k, idx in groups.items() for i in idx[: seats[k]])


def process_docs_for(task: str):
    """An lm-eval ``process_docs`` function that keeps the lite subset of ``task``'s documents."""

    def process_docs(dataset):
        return dataset.select(lite_indices(task, list(dataset)))

    process_docs.__name__ = f"lite_{task}"
    return process_docs


# ----------------------------------------------------------------------------- agreement with the full suite
def lite_items(task: str, samples: list[dict], n_docs: int) -> list:
    """The headline metric's per-document items of a FULL run, indexed by test position (lm-eval's doc_id)."""
    from .drift import metric_item

    spec = tasks.task(task)
    items: list = [None] * n_docs
    for s in samples:
        items[int(s["doc_id"])] = metric_item(s, spec.headline, spec)
    return items


def lite_score(task: str, samples: list[dict], test_docs: list[dict]) -> tuple[float, int]:
    """The headline score ``task``'s lite version would give, from a FULL run's logged samples (lm-eval's
    ``doc_id`` is the document's index in the test split): ``(score, documents)``."""
    from .drift import aggregate

    items = lite_items(task, samples, len(test_docs))
    chosen = [items[i] for i in lite_indices(task, test_docs)]
    missing = sum(item is None for item in chosen)
    if missing:
        raise ValueError(f"{task}: the samples cover {len(chosen) - missing} of the {len(chosen)} lite documents "
                         "(a --limit run, or another bundle?)")
    return aggregate(tasks.task(task).headline, chosen), len(chosen)


def full_headline(task_results: dict, spec: tasks.TaskSpec) -> tuple[float, float]:
    """(headline score, its bootstrap standard error; 0 when lm-eval reports none) of one task's results entry."""
    se = task_results.get(f"{spec.headline}_stderr,none")
    return task_results[f"{spec.headline},none"], float(se) if isinstance(se, (int, float)) else 0.0


def row_agreement(results_root, row: dict, bundle) -> list[dict]:
    """:func:`agreement` of a leaderboard row, each task read from the results file its score comes from."""
    from pathlib import Path

    from .leaderboard import task_file

    return [c for task in LITE_SIZES
            for c in agreement(Path(results_root) / task_file(row, task), bundle, only=task)]


def agreement(results_file, bundle, only: str | None = None) -> list[dict]:
    """Per suite task of a published run (or ``only`` that task): full score, its 95% interval (± 1.96
    bootstrap standard errors, the leaderboard's), the lite score from the same samples, and whether it falls
    inside the interval."""
    from pathlib import Path

    from . import run_folder
    from .io import read_json, read_jsonl

    results = read_json(Path(results_file), what="results file")["results"]
    out = []
    for task in LITE_SIZES:
        if task not in results or (only and task != only):
            continue
        spec = tasks.task(task)
        path = run_folder.samples_file(results_file, task)
        if not path.is_file():
            continue
        full, se = full_headline(results[task], spec)
        score, n = lite_score(task, read_jsonl(path), read_jsonl(Path(bundle) / spec.bundle_task / "test.jsonl"))
        lo, hi = full - 1.96 * se, full + 1.96 * se
        out.append({"task": task, "lite_task": lite_name(task), "full": round(full, 4), "ci95": [round(lo, 4), round(hi, 4)],
                    "lite": round(score, 4), "lite_docs": n, "inside": lo - 1e-9 <= score <= hi + 1e-9})
    return out
