"""Measure a judge before believing it: ``econ-eval judge calibrate``.

A fixed, versioned calibration set is built from the bundle's VALIDATION split (never test): for QA, each
question with its reference answer (must score high), the reference cut to its first few words (partial),
a fluent answer to another question about another paper (must score low), that wrong answer padded with
on-topic filler (length bias: it must not score higher than the plain wrong answer) and an empty answer;
for titles, the true title (high), another paper's title and a generic title (low). The judge scores them
with the same rubrics, cache and call budget as ``econ-eval judge``; the report gives per rubric:

- ``auc``: probability that a correct item outscores a wrong one (Mann-Whitney, ties count half);
- ``spearman``: rank correlation of the scores with the expected order (wrong < partial < correct);
- ``unparseable_rate``: share of replies that were not a valid judgement (counted, never guessed);
- ``length_bias``: mean score of padded wrong answers minus that of the same answers unpadded.

``econ-eval judge`` looks the calibration of its judge up (or runs a small one within the budget) and
marks its report ``trusted: false`` with a warning when the AUC is below :data:`TRUST_AUC`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .. import config, run_folder
from ..io import DataError, Interrupted, read_jsonl
from .client import BudgetExhausted, ChatClient, EndpointUnreachable, base_url_host
from .jobs import run_jobs
from .rubrics import JUDGE_PROMPT_VERSION, SCORE_SCHEMA, judge_messages, parse_judgement

CALIBRATION_VERSION = "1"
#: below this AUC a judge cannot tell right from wrong well enough for its scores to mean anything
TRUST_AUC = 0.8
DEFAULT_ITEMS = 20  # documents per rubric
SMALL_ITEMS = 5  # what `judge` runs when it finds no calibration of its judge
GENERIC_TITLE = "An Economic Analysis"
PADDING = (" This is an important question in economics, and the answer draws on the paper's data, its "
           "methods and the wider literature, which together make the point clear and well supported.")
#: expected order of each kind of item (0 = worst); ``correct``: True/False for the AUC, None = not used
KINDS = {
    "qa_correctness": {"reference": (2, True), "truncated": (1, None), "other_answer": (0, False),
                       "padded_other_answer": (0, False), "empty": (0, False)},
    "title_quality": {"true_title": (2, True), "other_title": (0, False), "generic_title": (0, False)},
}


def calibration_dir() -> Path:
    """Where calibration files go: ``results/judge_calibration/``."""
    return config.results_dir() / "judge_calibration"


def calibration_items(bundle: Path | None = None, n: int = DEFAULT_ITEMS) -> list[dict]:
    """The calibration set: ``n`` validation documents per rubric, each in every kind of :data:`KINDS`."""
    bundle = Path(bundle) if bundle else config.data_dir()
    items = []
    for metric, folder in (("qa_correctness", "econ_qa"), ("title_quality", "econ_titles")):
        path = bundle / folder / "validation.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: not found; calibration uses the bundle's validation split "
                            "(build it with `econ-eval data build`)")
        docs = read_jsonl(path)
        if len(docs) < 2:
            raise DataError(f"{path}: needs at least 2 documents for a calibration set")
        docs = docs[: max(n, 2)] if n < len(docs) else docs
        for i, doc in enumerate(docs[:n]):
            other = docs[(i + len(docs) // 2) % len(docs)]  # another paper, deterministic
            if other.get("paper_id") == doc.get("paper_id"):
                other = docs[(i + 1) % len(docs)]
            if metric == "qa_correctness":
                words = doc["answer"].split()
                responses = {"reference": doc["answer"], "truncated": " ".join(words[:4]) + " ...",
                             "other_answer": other["answer"], "padded_other_answer": other["answer"] + PADDING,
                             "empty": ""}
            else:
                responses = {"true_title": doc["title"], "other_title": other["title"],
                             "generic_title": GENERIC_TITLE}
            for kind, response in responses.items():
                items.append({"metric": metric, "kind": kind, "doc_index": i, "doc": doc, "response": response,
                              "expected": KINDS[metric][kind][0], "correct": KINDS[metric][kind][1]})
    return items


# ----------------------------------------------------------------------------- statistics
def auc(positive: list[float], negative: list[float]) -> float | None:
    """P(a positive outscores a negative), ties counting half (the Mann-Whitney AUC); None if a side is empty."""
    if not positive or not negative:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when either side is constant or too short."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def summarise(scored: list[dict]) -> dict:
    """Per rubric and overall: AUC, Spearman, unparseable rate, length bias, mean score per kind."""
    out = {}
    for metric in sorted({s["metric"] for s in scored}) + ["all"]:
        rows = [s for s in scored if metric == "all" or s["metric"] == metric]
        answered = [s for s in rows if s["status"] in ("scored", "unparseable")]
        valid = [s for s in rows if s["score"] is not None]
        by_kind: dict[str, list[float]] = {}
        for s in valid:
            by_kind.setdefault(s["kind"], []).append(s["score"])
        padded, plain = by_kind.get("padded_other_answer", []), by_kind.get("other_answer", [])
        out[metric] = {
            "auc": auc([s["score"] for s in valid if s["correct"] is True],
                       [s["score"] for s in valid if s["correct"] is False]),
            "spearman": spearman([s["expected"] for s in valid], [s["score"] for s in valid]),
            "unparseable_rate": (sum(s["status"] == "unparseable" for s in answered) / len(answered)
                                 if answered else None),
            "length_bias": (sum(padded) / len(padded) - sum(plain) / len(plain)) if padded and plain else None,
            "mean_score_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
            "n_items": len(rows), "n_scored": len(valid),
        }
    return out


# ----------------------------------------------------------------------------- running it
def _score(client: ChatClient, item: dict, stop: dict) -> dict:
    out = {k: item[k] for k in ("metric", "kind", "doc_index", "expected", "correct")}
    out.update(score=None, status="scored", cached=False, error=None)
    try:
        reply = client.chat(judge_messages(item["metric"], item), prompt_version=JUDGE_PROMPT_VERSION,
                            schema=SCORE_SCHEMA, accept=lambda c: not math.isnan(parse_judgement(c)[0]))
    except BudgetExhausted as exc:
        stop["budget"] = True
        return {**out, "status": "budget", "error": str(exc)}
    except EndpointUnreachable as exc:
        return {**out, "status": "error", "error": str(exc)}
    out["cached"] = reply.cached
    if reply.content is None:
        return {**out, "status": "error", "error": reply.error}
    score, _ = parse_judgement(reply.content)
    if math.isnan(score):
        return {**out, "status": "unparseable", "error": reply.content[:200]}
    return {**out, "score": score}


def calibrate(client: ChatClient, *, bundle: Path | None = None, n: int = DEFAULT_ITEMS, concurrency: int = 1,
              out_dir: Path | None = None, log=print) -> Path:
    """Score the calibration set with ``client``; write ``judge_calibration_<model>_<stamp>.json``."""
    items = calibration_items(bundle, n)
    started = time.perf_counter()
    results: list = [None] * len(items)
    stop: dict = {}
    interrupted = run_jobs(lambda it: _score(client, it, stop), items, concurrency=concurrency,
                           on_result=lambda i, r: results.__setitem__(i, r))
    scored = [r if r is not None else {**{k: it[k] for k in ("metric", "kind", "doc_index", "expected", "correct")},
                                       "score": None, "status": "not_run", "cached": False, "error": None}
              for r, it in zip(results, items)]
    answered = sum(s["status"] in ("scored", "unparseable") for s in scored)
    if not answered:  # nothing measured: a file would only be noise that later lookups must skip
        first = next((s["error"] for s in scored if s["error"]), "no reply")
        if interrupted:
            raise Interrupted("interrupted before the judge answered any calibration item; nothing was saved")
        raise DataError(f"the judge {client.model} at {base_url_host(client.base_url)} answered none of the "
                        f"{len(items)} calibration items ({first}); nothing was saved. Check the endpoint "
                        "(--judge-base-url) and the model name (--judge-model)")
    summary = summarise(scored)
    overall = summary["all"]
    stamp = run_folder.new_stamp()
    report = {
        "judge_model": client.model, "judge_base_url_host": base_url_host(client.base_url),
        "judge_prompt_version": JUDGE_PROMPT_VERSION, "calibration_version": CALIBRATION_VERSION,
        "items_per_rubric": n, "trust_auc": TRUST_AUC,
        "trusted": overall["auc"] is not None and overall["auc"] >= TRUST_AUC,
        "complete": all(s["status"] in ("scored", "unparseable") for s in scored),
        "interrupted": interrupted, "calls_made": client.calls, "cache_hits": client.cache_hits,
        "wall_time_s": round(time.perf_counter() - started, 2), "created": stamp,
        "results": summary, "items": scored,
    }
    out_dir = Path(out_dir) if out_dir else calibration_dir()
    path = run_folder.write_scores(out_dir, "judge_calibration", client.model, report, stamp)
    for metric, s in summary.items():
        log(f"{metric:<16} AUC {_fmt(s['auc'])}  Spearman {_fmt(s['spearman'])}  unparseable "
            f"{_fmt(s['unparseable_rate'])}  length bias {_fmt(s['length_bias'])}  ({s['n_scored']}/{s['n_items']})")
    log(f"calls {client.calls}, cache hits {client.cache_hits}; wrote {path}")
    if interrupted:
        raise Interrupted(f"interrupted: calibration stopped after {overall['n_scored']} of {len(scored)} items, "
                          f"saved to {path}; run the same command again to resume (replies are cached)")
    if not report["trusted"]:
        log(f"WARNING: {client.model} does not pass the trust gate (AUC {_fmt(overall['auc'])} < {TRUST_AUC}): "
            "its scores cannot tell right answers from wrong ones; do not report them as quality")
    return path


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def find_calibration(model: str, base_url: str, out_dir: Path | None = None) -> dict | None:
    """The newest complete calibration of this judge (model, endpoint host, prompt and calibration version)."""
    out_dir = Path(out_dir) if out_dir else calibration_dir()
    host = base_url_host(base_url)
    for path in sorted(out_dir.glob("judge_calibration_*.json"), reverse=True):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (doc.get("judge_model") == model and doc.get("judge_base_url_host") == host
                and doc.get("judge_prompt_version") == JUDGE_PROMPT_VERSION
                and doc.get("calibration_version") == CALIBRATION_VERSION and doc.get("complete")):
            return {"file": str(path), **{k: doc[k] for k in ("trusted", "items_per_rubric", "created")},
                    "auc": doc["results"]["all"]["auc"], "spearman": doc["results"]["all"]["spearman"],
                    "unparseable_rate": doc["results"]["all"]["unparseable_rate"]}
    return None


def trust_of(client: ChatClient, *, bundle: Path | None = None, out_dir: Path | None = None, log=print) -> dict:
    """The calibration ``judge`` records: the newest of this judge, else a small one run now (its calls
    count against the budget). ``{"trusted": ..., "auc": ..., "file": ...}``; ``trusted`` is None when no
    calibration could be made (no bundle, budget spent)."""
    found = find_calibration(client.model, client.base_url, out_dir)
    if found is None:
        log(f"no calibration of {client.model} at {base_url_host(client.base_url)} yet: running a small one "
            f"({SMALL_ITEMS} validation documents per rubric; `econ-eval judge calibrate` for a full one)")
        try:
            calibrate(client, bundle=bundle, n=SMALL_ITEMS, out_dir=out_dir, log=log)
        except DataError as exc:
            log(f"WARNING: could not calibrate the judge ({exc}); its scores are marked unverified")
            return {"trusted": None, "auc": None, "file": None, "reason": str(exc)}
        found = find_calibration(client.model, client.base_url, out_dir)
        if found is None:
            return {"trusted": None, "auc": None, "file": None,
                    "reason": "the calibration did not complete (call budget or endpoint errors)"}
    if not found["trusted"]:
        log(f"WARNING: judge {client.model} failed calibration (AUC {_fmt(found['auc'])} < {TRUST_AUC}, "
            f"{found['file']}): its scores are not meaningful and are marked trusted: false")
    return found
