"""THE judge prompts: versioned rubrics that score logged generations 1-10 with a short rationale.

Every judge call is built here, so a score can always be traced to a prompt version
(``JUDGE_PROMPT_VERSION`` goes into every judge results file and every cache key).
Change a rubric and bump the version: cached scores of the old version are then not reused.
"""

from __future__ import annotations

import json
import math
import re

from .. import tasks as _tasks

JUDGE_PROMPT_VERSION = "1"

#: Longest rationale kept (characters); the JSON schema asks the server to respect it.
RATIONALE_MAX_CHARS = 300

#: Structured output the judge must return.
SCORE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "enum": list(range(1, 11))},
        "rationale": {"type": "string", "maxLength": RATIONALE_MAX_CHARS},
    },
    "required": ["score", "rationale"],
}

_SYSTEM = ("You are a strict, fair economics professor grading answers. "
           "Reply with a JSON object only: {\"score\": <integer 1-10>, \"rationale\": \"<one sentence>\"}.")

_QA_RUBRIC = """Grade the ANSWER to the QUESTION about an economics paper.
Compare it with the REFERENCE answer and the EVIDENCE from the paper's abstract.
- 9-10: correct and complete: every point of the reference, nothing false.
- 6-8: correct but incomplete, or one minor inaccuracy.
- 3-5: partly correct; misses the main point or adds unsupported claims.
- 1-2: wrong, off-topic, empty or unreadable.
Judge content, not wording or length."""

_TITLE_RUBRIC = """Grade the candidate TITLE for the economics paper whose ABSTRACT is given.
The paper's TRUE TITLE is shown for reference; a different title can still be excellent.
- 9-10: accurate, specific and concise; names the paper's subject and method or finding.
- 6-8: accurate but generic, too long, or missing a key element.
- 3-5: partly accurate or misleading; or not a title (a sentence, a summary).
- 1-2: wrong subject, empty or unreadable."""


def _qa_messages(sample: dict) -> list[dict]:
    doc = sample["doc"]
    user = (f"{_QA_RUBRIC}\n\nQUESTION: {doc['question']}\n\nREFERENCE: {doc['answer']}\n\n"
            f"EVIDENCE: {doc.get('evidence', '')}\n\nANSWER: {sample['response']}\n\n"
            "Return the JSON object.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _title_messages(sample: dict) -> list[dict]:
    doc = sample["doc"]
    user = (f"{_TITLE_RUBRIC}\n\nABSTRACT: {doc['abstract']}\n\nTRUE TITLE: {doc['title']}\n\n"
            f"TITLE: {sample['response']}\n\nReturn the JSON object.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


#: judge metric -> (tasks it applies to, message builder); which tasks is the registry's ``judge_metrics``
JUDGE_METRICS = {
    metric: (tuple(t.name for t in _tasks.TASKS.values() if metric in t.judge_metrics), builder)
    for metric, builder in (("qa_correctness", _qa_messages), ("title_quality", _title_messages))
}


def judge_messages(metric: str, sample: dict) -> list[dict]:
    """Chat messages asking the judge to score one logged sample (``doc`` + ``response``) on ``metric``."""
    if metric not in JUDGE_METRICS:
        raise ValueError(f"unknown judge metric {metric!r}; choose from {sorted(JUDGE_METRICS)}")
    return JUDGE_METRICS[metric][1](sample)


def metrics_for_task(task: str) -> list[str]:
    """The judge metrics that apply to an lm-eval task name."""
    return [m for m, (names, _) in JUDGE_METRICS.items() if task in names]


_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def parse_judgement(text: str | None) -> tuple[float, str | None]:
    """Strictly parse a judge reply: ``(score, rationale)``, or ``(nan, None)`` if it is not valid.

    Valid = one JSON object (optionally wrapped in prose or a code fence) with an integer
    ``score`` in 1..10 and a string ``rationale``. Anything else is NaN, never a guessed number.
    """
    if not isinstance(text, str):
        return math.nan, None
    m = _JSON_OBJECT.search(text)
    if not m:
        return math.nan, None
    try:
        obj = json.loads(m.group(0), strict=False)
    except json.JSONDecodeError:
        return math.nan, None
    if not isinstance(obj, dict):
        return math.nan, None
    score, rationale = obj.get("score"), obj.get("rationale")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score):
        return math.nan, None
    if not 1 <= score <= 10 or not isinstance(rationale, str):
        return math.nan, None
    return float(score), rationale.strip()[:RATIONALE_MAX_CHARS]


# ------------------------------------------------------------------ pairwise (two answers, one verdict)
PAIRWISE_PROMPT_VERSION = "1"

#: Structured output of a pairwise verdict.
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "rationale": {"type": "string", "maxLength": RATIONALE_MAX_CHARS},
    },
    "required": ["winner", "rationale"],
}

_PAIR_SYSTEM = ("You are a strict, fair economics professor comparing two answers. Reply with a JSON object only: "
                "{\"winner\": \"A\" | \"B\" | \"tie\", \"rationale\": \"<one sentence>\"}.")

_PAIR_TASK = {
    "qa_correctness": ("Which ANSWER to the QUESTION about an economics paper is better? Compare both with the "
                       "REFERENCE answer and the EVIDENCE from the abstract. Judge content, not wording, length "
                       "or position: the order of A and B means nothing.",
                       lambda doc: f"QUESTION: {doc['question']}\n\nREFERENCE: {doc['answer']}\n\n"
                                   f"EVIDENCE: {doc.get('evidence', '')}"),
    "title_quality": ("Which candidate TITLE is the better title for the economics paper whose ABSTRACT is given "
                      "(accurate, specific, concise)? The TRUE TITLE is shown for reference. The order of A and B "
                      "means nothing.",
                      lambda doc: f"ABSTRACT: {doc['abstract']}\n\nTRUE TITLE: {doc['title']}"),
}


def pairwise_messages(metric: str, doc: dict, first: str, second: str) -> list[dict]:
    """Chat messages asking which of two responses to the same document is better (A = ``first``)."""
    if metric not in _PAIR_TASK:
        raise ValueError(f"unknown judge metric {metric!r}; choose from {sorted(_PAIR_TASK)}")
    instruction, context = _PAIR_TASK[metric]
    user = (f"{instruction}\n\n{context(doc)}\n\nA: {first}\n\nB: {second}\n\nReturn the JSON object.")
    return [{"role": "system", "content": _PAIR_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> str | None:
    """Strictly parse a pairwise reply: ``"A"``, ``"B"`` or ``"tie"``, or None when it is not a valid verdict."""
    if not isinstance(text, str):
        return None
    m = _JSON_OBJECT.search(text)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0), strict=False)
    except json.JSONDecodeError:
        return None
    winner = obj.get("winner") if isinstance(obj, dict) else None
    return winner if winner in ("A", "B", "tie") and isinstance(obj.get("rationale"), str) else None
