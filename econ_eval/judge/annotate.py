"""``econ-eval annotate qa|signal``: extend the benchmark with any OpenAI-compatible model.

- ``qa``: input JSON Lines of papers (``id`` or ``paper_id``, ``title``, ``abstract``) -> QA pairs
  ``{"paper_id", "question", "answer", "evidence", "type"}`` like ``annotations/arxiv_econ_qa.jsonl``.
- ``signal``: input JSON Lines of stories (``newid``, ``date``, ``title``, ``text``) -> labels
  ``{"newid", "signal", "landmark", "reason"}`` like ``annotations/reuters_signal.jsonl``.

Output lines are appended as they are made (nothing is lost on interruption) and a re-run skips the
items already in the output, so it resumes. Every line is validated; a reply that breaks the format
(e.g. evidence that is not verbatim in the abstract, a landmark without a signal) is rejected and counted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import DataError, Interrupted, read_jsonl
from .client import BudgetExhausted, ChatClient, EndpointUnreachable
from .jobs import run_jobs
from .annotation_prompts import (ANNOTATE_PROMPT_VERSION, QA_ANSWER_MAX_WORDS, QA_PAIRS_SCHEMA, QA_TYPES, SIGNAL_LABEL_SCHEMA,
                      annotate_qa_messages, annotate_signal_messages)


def _loads(text: str | None):
    if not isinstance(text, str):
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        return json.loads(text[start:end + 1], strict=False)
    except json.JSONDecodeError:
        return None


def validate_qa_pairs(paper_id: str, abstract: str, reply: str | None) -> tuple[list[dict], list[str]]:
    """Valid pairs from a reply, and the reasons for every rejected one."""
    obj = _loads(reply)
    if not isinstance(obj, dict) or not isinstance(obj.get("pairs"), list):
        return [], ["reply is not {\"pairs\": [...]}"]
    good, bad = [], []
    for pair in obj["pairs"][:2]:
        if not isinstance(pair, dict):
            bad.append("pair is not an object")
            continue
        q, a, e, t = (pair.get(k) for k in ("question", "answer", "evidence", "type"))
        if not all(isinstance(v, str) and v.strip() for v in (q, a, e, t)):
            bad.append("missing field")
        elif t not in QA_TYPES:
            bad.append(f"type {t!r} not one of {QA_TYPES}")
        elif e.strip() not in abstract:
            bad.append("evidence is not a verbatim substring of the abstract")
        elif len(a.split()) > QA_ANSWER_MAX_WORDS:
            bad.append(f"answer longer than {QA_ANSWER_MAX_WORDS} words")
        else:
            good.append({"paper_id": paper_id, "question": q.strip(), "answer": a.strip(),
                         "evidence": e.strip(), "type": t})
    return good, bad


def validate_signal(newid, reply: str | None) -> tuple[dict | None, str | None]:
    """The label line from a reply, or ``(None, reason)``."""
    obj = _loads(reply)
    if not isinstance(obj, dict):
        return None, "reply is not a JSON object"
    sig, land, reason = obj.get("signal"), obj.get("landmark"), obj.get("reason")
    if sig not in (0, 1) or land not in (0, 1) or isinstance(sig, bool) or isinstance(land, bool):
        return None, "signal/landmark not 0 or 1"
    if land > sig:
        return None, "landmark=1 requires signal=1"
    if not isinstance(reason, str):
        return None, "reason missing"
    return {"newid": newid, "signal": sig, "landmark": land, "reason": " ".join(reason.split()[:15])}, None


def _read_inputs(kind: str, path: Path) -> list[dict]:
    rows = read_jsonl(path)
    need = ("title", "abstract") if kind == "qa" else ("newid", "title", "text")
    for i, row in enumerate(rows, 1):
        if kind == "qa" and not (row.get("id") or row.get("paper_id")):
            raise DataError(f"{path}: line {i}: no 'id' (or 'paper_id'); every paper needs an identifier")
        for field in need:
            if row.get(field) in (None, ""):
                raise DataError(f"{path}: line {i}: field '{field}' missing or empty; add it or drop the line")
    return rows


def annotate(kind: str, input_path: Path | str, output_path: Path | str, client: ChatClient, *,
             concurrency: int = 1, limit: int | None = None, progress: bool = True, log=print) -> dict:
    """Annotate ``input_path`` into ``output_path`` (appending, resumable); return the counts."""
    from tqdm.auto import tqdm

    if kind not in ("qa", "signal"):
        raise ValueError("kind must be 'qa' or 'signal'")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit} (leave it out to annotate every item)")
    input_path, output_path = Path(input_path), Path(output_path)
    items = _read_inputs(kind, input_path)
    key = "paper_id" if kind == "qa" else "newid"
    done = {r.get(key) for r in read_jsonl(output_path)} if output_path.exists() else set()
    ident = (lambda r: str(r.get("id") or r.get("paper_id"))) if kind == "qa" else (lambda r: r["newid"])
    pending = [r for r in items if ident(r) not in done]
    todo = pending if limit is None else pending[:limit]
    counts = {"inputs": len(items), "already_done": len(items) - len(pending),
              "annotated": 0, "lines_written": 0, "rejected": 0, "errors": 0, "budget_stopped": False}
    rejections: dict[str, int] = {}

    def valid(item):
        if kind == "qa":
            return lambda content: bool(validate_qa_pairs(ident(item), item["abstract"], content)[0])
        return lambda content: validate_signal(item["newid"], content)[0] is not None

    def work(item):
        messages = annotate_qa_messages(item) if kind == "qa" else annotate_signal_messages(item)
        schema = QA_PAIRS_SCHEMA if kind == "qa" else SIGNAL_LABEL_SCHEMA
        try:
            return item, client.chat(messages, prompt_version=ANNOTATE_PROMPT_VERSION, schema=schema,
                                     accept=valid(item))
        except BudgetExhausted:
            return item, None
        except EndpointUnreachable:  # the client remembers it (client.unreachable)
            return item, False

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("a", encoding="utf-8") as out, \
            tqdm(total=len(todo), desc=f"annotating {kind}", unit="item", disable=not progress) as bar:
        def on_result(_, result):
            item, reply = result
            bar.update(1)
            if reply is None:
                counts["budget_stopped"] = True
                return
            if reply is False or reply.content is None:
                counts["errors"] += 1
                return
            if kind == "qa":
                lines, bad = validate_qa_pairs(ident(item), item["abstract"], reply.content)
            else:
                line, reason = validate_signal(item["newid"], reply.content)
                lines, bad = ([line] if line else []), ([reason] if reason else [])
            for reason in bad:
                rejections[reason] = rejections.get(reason, 0) + 1
            counts["rejected"] += len(bad)
            if lines:
                counts["annotated"] += 1
                out.write("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
                out.flush()
                counts["lines_written"] += len(lines)

        interrupted = run_jobs(work, todo, concurrency=concurrency, on_result=on_result)
    counts.update(rejections=rejections, calls=client.calls, cache_hits=client.cache_hits,
                  prompt_version=ANNOTATE_PROMPT_VERSION, model=client.model, interrupted=interrupted,
                  endpoint_error=client.unreachable)
    log(json.dumps(counts, indent=2))
    if interrupted:
        raise Interrupted(f"interrupted: {counts['lines_written']} line(s) appended to {output_path}; "
                          "run the same command again to resume")
    if todo and counts["annotated"] == 0 and counts["errors"] > 0:
        raise RuntimeError(f"no item could be annotated by {client.model} at {client.base_url}: "
                           f"{counts['errors']} failed call(s)"
                           + (f"; {client.unreachable}" if client.unreachable else ""))
    return counts


def _cmd_annotate(args) -> int:
    from ..cli_args import judge_client

    annotate(args.kind, Path(args.input), Path(args.output), judge_client(args, max_tokens=600),
             concurrency=args.concurrency, limit=args.limit)
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    from ..cli_args import add_judge_endpoint_args, add_call_args

    an = sub.add_parser("annotate", help="make new benchmark data with any OpenAI-compatible model: QA pairs for "
                        "abstracts, or signal labels for news stories (appends, resumable)")
    an.add_argument("kind", choices=["qa", "signal"])
    an.add_argument("--input", required=True, help="JSON Lines: papers (id, title, abstract) or stories "
                    "(newid, date, title, text)")
    an.add_argument("--output", required=True, help="JSON Lines to append to (same format as shared/data/annotations)")
    add_judge_endpoint_args(an)
    add_call_args(an)
    an.set_defaults(func=_cmd_annotate)
