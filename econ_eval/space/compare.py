"""The Compare tab: task examples (bundle or an exported Space's examples file), prompts, gold answers and
per-example scores, all from the task registry; the adapter's display name and model card."""

from __future__ import annotations

import re
from pathlib import Path

from .. import config, metrics, prompts, tasks
from ..io import DataError, read_jsonl

#: Compare tab: label shown -> task (the registry's ``demo_label``)
DEMO_TASKS = {t.demo_label: t.name for t in tasks.TASKS.values() if t.demo_label}

def gen_prompt(task: str, doc: dict) -> str:
    """The task's prompt (classification and signal are answered in words, as their ``_gen`` twins are)."""
    return tasks.task(task).prompt(doc)


def gold_answer(task: str, doc: dict) -> str | None:
    """The reference answer of a test example (None for pasted text)."""
    try:
        return tasks.task(task).target(doc)
    except (KeyError, ValueError):
        return None


def score_answer(task: str, doc: dict, answer: str) -> str:
    """The task's per-example metric for one answer, as a short text."""
    spec = tasks.task(task)
    if spec.is_classification:
        label = spec.parse(answer)
        shown = label if label == prompts.INVALID or isinstance(label, str) else spec.label_name(label)
        return f"parsed: {shown} — {'correct' if label == spec.gold_label(doc) else 'wrong'}"
    ref = gold_answer(task, doc)
    pred = spec.clean_answer(answer)
    parts = [f"ROUGE-L {metrics.rouge_scores(ref, pred)['rougeL']:.3f}"]
    if "token_f1" in spec.metrics:
        parts.append(f"token F1 {metrics.token_f1(ref, pred):.3f}")
    return ", ".join(parts)


def pasted_doc(task: str, text: str, question: str = "") -> dict:
    """A doc built from pasted text, in the fields the task's prompt reads."""
    text = (text or "").strip()
    if not text:
        raise DataError("paste some text first (an abstract, or a news story)")
    return tasks.task(task).doc_from_text(text, question)


#: Test examples shipped with an exported Space (``econ-eval space export``), used when no bundle is built.
EXAMPLES_FILE = "space_examples.jsonl"


def load_examples(task: str, n: int = 40, bundle: Path | None = None) -> list[dict]:
    """The first ``n`` test examples of a bundle task (the bundle's seeded order); without a built bundle,
    those of the examples file an exported Space ships (``<checkout>/space_examples.jsonl``)."""
    bundle = bundle or config.data_dir()
    path = bundle / task / "test.jsonl"
    if path.is_file():
        return read_jsonl(path)[:n]
    shipped = config.REPO_ROOT / EXAMPLES_FILE
    if shipped.is_file():
        return [r["doc"] for r in read_jsonl(shipped) if r.get("task") == task][:n]
    raise DataError(f"{path}: not found; build the bundle with `econ-eval data build`")


def adapter_card(adapter: str | Path | None) -> tuple[str, str]:
    """``(name, model card markdown)`` of an adapter folder, for display: never its local path."""
    if not adapter:
        return "—", ""
    adapter = Path(adapter)
    card = adapter / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    if text.startswith("---"):  # drop the YAML front matter
        end = text.find("\n---", 3)
        text = text[end + 4:] if end > 0 else text
    # the card's table names the base model's local path: show the short name only
    text = "\n".join(line for line in text.splitlines() if "](" not in line or "loss_curve" not in line)
    text = re.sub(r"\(`/[^`]*`\)", "", text)
    return adapter.name, text.strip()


def example_label(task: str, doc: dict, i: int) -> str:
    # a question, else the paper's or story's title, else the sentence itself (FOMC, FPB)
    head = doc.get("question") or doc.get("title") or doc.get("text", "")
    head = " ".join(str(head).split())
    return f"{i + 1}. {head[:90]}"


#: How the Compare tab words a pairwise outcome seen from the tuned answer's side.
VERDICT_WORDS = {"win": "tuned answer better", "loss": "base answer better", "tie": "tie",
                 "inconsistent": "no verdict: the judge contradicted itself when the order was swapped",
                 "missing": "no verdict: the judge gave no valid reply"}


def judge_verdict(client, task: str, doc: dict, base_answer: str, tuned_answer: str,
                  calibration: dict | None = None) -> str | None:
    """The pairwise verdict of ``client`` on one test example (tuned vs base, asked in both orders), as a line
    of Markdown; None when no judge rubric applies to the task. ``calibration``: the judge's
    :func:`~econ_eval.judge.calibration.find_calibration` record, shown so a failed judge is not believed."""
    from ..judge.pairwise import judge_one
    from ..judge.rubrics import metrics_for_task

    metrics_ = metrics_for_task(task)
    if not metrics_:
        return None
    parts = []
    for metric in metrics_:
        v = judge_one(client, metric, doc, tuned_answer.strip(), base_answer.strip())
        orders = f"tuned first: {v['verdict_a_first'] or '—'}, base first: {v['verdict_b_first'] or '—'}"
        parts.append(f"{metric}: **{VERDICT_WORDS[v['outcome']]}** ({orders})")
    if calibration is None:
        trust = "not calibrated: run `econ-eval judge calibrate` before believing it"
    elif calibration.get("trusted"):
        trust = f"calibrated, AUC {calibration['auc']:.3f}"
    else:
        trust = f"FAILED calibration (AUC {calibration['auc']:.3f} < 0.8): not meaningful"
    return f"judge `{client.model}` ({trust}): " + "; ".join(parts)

