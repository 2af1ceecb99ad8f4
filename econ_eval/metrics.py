"""THE metrics: one module used by the lm-eval tasks, the baselines and the reports.

Two kinds of functions:

- per-document scorers (``rouge_scores``, ``token_f1``) whose values lm-eval averages with ``mean``;
- corpus-level aggregations over per-document items (``bleu`` over (reference, prediction) pairs,
  ``macro_f1`` etc. over (gold, prediction) pairs). Each aggregation's name equals the metric key
  that ``process_results`` returns (lm-eval ignores it otherwise), and each is marked with
  :func:`corpus_metric` so that :func:`bootstrap_stderr` can give it a standard error.

The computations are delegated to sacrebleu, rouge-score and scikit-learn; nothing is re-implemented
except SQuAD's token F1, which has no library home.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import string
import warnings
from typing import Callable, Sequence

import numpy as np

from .config import DEFAULT_SEED
from .prompts import INVALID, LABEL_SETS

#: Corpus-level aggregation functions that get a bootstrap standard error.
CORPUS_METRICS: dict[str, Callable] = {}
#: Resamples for corpus-metric standard errors (``ECON_EVAL_BOOTSTRAP_ITERS`` overrides; lm-eval's
#: ``--bootstrap_iters`` caps it further, and 0 turns standard errors off).
BOOTSTRAP_ITERS = int(os.environ.get("ECON_EVAL_BOOTSTRAP_ITERS", "500"))
BOOTSTRAP_SEED = DEFAULT_SEED


def corpus_metric(fn: Callable) -> Callable:
    """Register ``fn`` as a corpus-level aggregation (name = metric key) with a bootstrap stderr.

    scikit-learn's warnings about single-class resamples are silenced: those cases are expected in
    bootstraps and small ``--limit`` runs, and the zero_division/labels arguments handle them.
    """

    @functools.wraps(fn)
    def wrapper(items):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(items)

    CORPUS_METRICS[fn.__name__] = wrapper
    return wrapper


def bootstrap_stderr(fn: Callable, items: Sequence, iters: int | None = None, seed: int = BOOTSTRAP_SEED) -> float:
    """Standard deviation of ``fn`` over ``iters`` resamples (with replacement) of ``items``; seeded."""
    items = list(items)
    iters = BOOTSTRAP_ITERS if iters is None else iters
    if len(items) < 2 or iters < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    n = len(items)
    values = [fn([items[i] for i in rng.integers(0, n, n)]) for _ in range(iters)]
    return float(np.std(values, ddof=1))


def bootstrap_interval(fn: Callable, items: list, *, n: int, seed: int) -> tuple[float, float] | None:
    """Percentile bootstrap 95% interval of ``fn`` over ``items`` (None with fewer than 2 items)."""
    if len(items) < 2 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    values = [fn([items[i] for i in rng.integers(0, len(items), len(items))]) for _ in range(n)]
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- generation metrics
@corpus_metric
def bleu(items: Sequence[tuple[str, str]]) -> float:
    """Corpus BLEU (sacrebleu, 0-100) over (reference, prediction) pairs."""
    import sacrebleu

    refs = [r for r, _ in items]
    preds = [p if isinstance(p, str) else "" for _, p in items]
    return float(sacrebleu.corpus_bleu(preds, [refs]).score)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_scores(reference: str, prediction: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (rouge-score, Porter stemming) of one prediction."""
    scores = _rouge_scorer().score(reference, prediction or "")
    return {k: float(v.fmeasure) for k, v in scores.items()}


def _normalise_answer(text: str) -> list[str]:
    """SQuAD answer normalisation: lower case, no punctuation, no articles, split on white space."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def token_f1(reference: str, prediction: str) -> float:
    """SQuAD-style token-overlap F1 between one prediction and its reference."""
    ref, pred = _normalise_answer(reference), _normalise_answer(prediction or "")
    if not ref or not pred:
        return float(ref == pred)
    common = collections.Counter(ref) & collections.Counter(pred)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def clean_generation(text: str) -> str:
    """First non-empty line of a generation, stripped of quotes and a leading 'Title:'-style label."""
    if not isinstance(text, str):
        return ""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^(title|answer)\s*:\s*", "", line, flags=re.I)
            return line.strip().strip('"“”*').strip()
    return ""


# --------------------------------------------------------------------------- classification
def _pairs(items):
    gold = [g for g, _ in items]
    pred = [p for _, p in items]
    return gold, pred


def _labels_for(gold) -> list:
    """The label set a classification is scored against: the suite's set that holds the gold labels
    (prompts.LABEL_SETS; an invalid answer is in none), or 0/1 (and more) for integer labels."""
    if isinstance(gold[0], str):
        present = set(gold)
        return next((list(labels) for labels in LABEL_SETS if present <= set(labels)), sorted(present))
    return sorted({0, 1} | set(g for g in gold))


def _sklearn_metric(name: str, scorer: str, doc: str, *, positive_class: bool = False, **kwargs) -> Callable:
    """A corpus metric named ``name`` that calls ``sklearn.metrics.<scorer>`` on (gold, pred) pairs.

    Multi-class metrics use the gold label set (an invalid answer counts as a miss); positive-class
    metrics score label 1, with invalid answers mapped to a non-label.
    """

    def metric(items) -> float:
        import sklearn.metrics

        gold, pred = _pairs(items)
        if positive_class:
            labels, pred = [1], [p if p in (0, 1) else -1 for p in pred]
        else:
            labels = _labels_for(gold)
        return float(getattr(sklearn.metrics, scorer)(gold, pred, labels=labels, average="macro" if positive_class
                                                      else kwargs["average"], zero_division=0))

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = doc
    return corpus_metric(metric)


macro_f1 = _sklearn_metric("macro_f1", "f1_score", "Macro-averaged F1 over the gold label set.", average="macro")
weighted_f1 = _sklearn_metric("weighted_f1", "f1_score", "Support-weighted F1 over the gold label set.",
                              average="weighted")
macro_precision = _sklearn_metric("macro_precision", "precision_score", "Macro-averaged precision.", average="macro")
macro_recall = _sklearn_metric("macro_recall", "recall_score", "Macro-averaged recall.", average="macro")
precision = _sklearn_metric("precision", "precision_score", "Precision of the positive class (label 1).",
                            positive_class=True)
recall = _sklearn_metric("recall", "recall_score", "Recall of the positive class (label 1).", positive_class=True)
f1 = _sklearn_metric("f1", "f1_score", "F1 of the positive class (label 1); an invalid answer counts as a miss.",
                     positive_class=True)


@corpus_metric
def mcc(items) -> float:
    """Matthews correlation coefficient (multi-class aware; invalid answers are their own class)."""
    from sklearn.metrics import matthews_corrcoef

    gold, pred = _pairs(items)
    return float(matthews_corrcoef([str(g) for g in gold], [str(p) for p in pred]))


@corpus_metric
def avg_f1(items) -> float:
    """FinBen's Headlines score: the mean over question types of the support-weighted F1 (labels 0 and 1) of
    the (type, gold, prediction) items of each type; an invalid answer counts as a miss."""
    from sklearn.metrics import f1_score

    by_type: dict = {}
    for label_type, gold, pred in items:
        by_type.setdefault(label_type, []).append((gold, pred))
    scores = [f1_score([g for g, _ in pairs], [p if p in (0, 1) else -1 for _, p in pairs], labels=[0, 1],
                       average="weighted", zero_division=0) for pairs in by_type.values()]
    return float(np.mean(scores))


def is_invalid(prediction) -> bool:
    """True when a parsed generative answer matched no label."""
    return prediction == INVALID


def confusion(items, labels: Sequence) -> dict:
    """Confusion matrix (rows gold, columns predicted, plus an ``invalid`` column) as plain lists."""
    cols = list(labels) + [INVALID]
    index = {lab: i for i, lab in enumerate(cols)}
    matrix = [[0] * len(cols) for _ in labels]
    for g, p in items:
        matrix[list(labels).index(g)][index.get(p, len(cols) - 1)] += 1
    return {"labels": [str(x) for x in labels], "columns": [str(c) for c in cols], "matrix": matrix}


def classification_report(gold: Sequence, pred: Sequence, *, binary: bool) -> dict[str, float]:
    """All classification metrics of one system at once (the same functions lm-eval aggregates)."""
    items = list(zip(gold, pred))
    out = {"acc": float(np.mean([g == p for g, p in items]))}
    names = ["precision", "recall", "f1", "mcc"] if binary else \
        ["macro_f1", "weighted_f1", "macro_precision", "macro_recall", "mcc"]
    for name in names:
        out[name] = CORPUS_METRICS[name](items)
    return out


# ----------------------------------------------------------------------------- TAT-QA (numeracy-aware EM / F1)
# TAT-QA's official evaluator (NExTplusplus/TAT-QA, tatqa_metric.py + tatqa_utils.py; Zhu et al., ACL 2021)
# re-implemented from its definition, not copied: answers are written as strings with their scale applied
# (numbers as "%.4f" of value x scale), normalised token by token (lower case, punctuation and articles
# removed, numbers rewritten as floats), compared as bags of words aligned one-to-one (DROP's F1); EM needs the
# same normalised answer; for arithmetic and count questions F1 is EM. Our generative answers carry their
# scale inline ("1,234 thousand", "12.5%"), so the predicted scale passed to the evaluator is always "".
TATQA_SCALES = {"": 1, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "percent": 0.01}
_NUM_NOISE = set("'\"\\$€£¥%(),[]")
_TATQA_NUM = re.compile(r"([+-]?\d+(\.\d+)?)|([+-]?\.\d+)")


def tatqa_scale_to_num(scale: str) -> float:
    """The multiplier a scale word stands for (1 when it names none; "hundred" counts, as upstream)."""
    scale = scale.lower()
    for word, value in (("hundred", 100), ("thousand", 1_000), ("million", 1_000_000),
                        ("billion", 1_000_000_000), ("percent", 0.01)):
        if word in scale:
            return value
    return 1


def _tatqa_strip_num(text: str) -> str:
    return "".join(ch for ch in str(text) if ch not in _NUM_NOISE)


def tatqa_is_number(text: str) -> bool:
    """Whether ``text`` reads as a number, optionally followed by a scale word ("1,234", "(5.2)", "3 million")."""
    words = " ".join(_tatqa_strip_num(w) for w in str(text).split()).split()
    if not words:
        return False
    try:
        value = float(words[0])
    except ValueError:
        return False
    if value != value:  # NaN
        return False
    return len(words) < 2 or tatqa_scale_to_num(words[1]) != 1


def tatqa_to_number(text: str) -> float | None:
    """The value of a number as written in a report: the first number, times a scale word right after it,
    negative in parentheses ("(1,234)"), divided by 100 with a percent sign; rounded to 4 places."""
    found = _TATQA_NUM.findall(_tatqa_strip_num(text))
    if not found or not found[0][0]:
        return None
    raw = found[0][0]
    num = float(raw) if "." in raw else int(raw)
    scaled = re.search(r"[\d.]+\s?[a-zA-Z]+", text)
    scale = tatqa_scale_to_num(scaled.group(0).lower()) if scaled else 1
    negative = -1 if re.search(r"\([\d.\s]+\)", text.strip()) else 1
    percent = 0.01 if re.search(r"[\d.\s]+%", text.strip()) else 1
    return round(num * scale * negative * percent, 4)


def tatqa_normalize(text: str) -> str:
    """The evaluator's normalisation, token by token (split on single spaces)."""
    parts = []
    for token in str(text).split(" "):
        token = token.lower()
        if not tatqa_is_number(token):
            token = "".join(ch for ch in token if ch not in string.punctuation)
        if tatqa_is_number(token):
            token = str(tatqa_to_number(token))
        token = " ".join(re.sub(r"\b(a|an|the)\b", " ", token).split())
        if token.strip():
            parts.append(token)
    return " ".join(parts).strip()


def tatqa_answer_string(answers: Sequence, scale: str) -> str:
    """Answers (sorted) as one string with the scale applied: numbers as ``%.4f`` of value x scale (a number
    with a percent sign as its own value), anything else with the scale word appended."""
    out = []
    for ans in sorted(str(a) for a in answers):
        if tatqa_is_number(ans):
            num = tatqa_to_number(ans)
            if num is None:
                out.append(f"{ans} {scale}" if scale else ans)
            elif "%" in ans:
                out.append("%.4f" % num)
            else:
                out.append("%.4f" % (round(num, 2) * tatqa_scale_to_num(scale)))
        else:
            out.append(f"{ans} {scale}" if scale else ans)
    return " ".join(out)


def _tatqa_bag_f1(predicted: set, gold: set) -> float:
    inter = len(gold & predicted)
    precision = inter / len(predicted) if predicted else 1.0
    recall = inter / len(gold) if gold else 1.0
    return 0.0 if precision == 0.0 and recall == 0.0 else 2 * precision * recall / (precision + recall)


def _tatqa_em_f1_strings(predicted: str, gold: str) -> tuple[float, float]:
    pred_norm, gold_norm = tatqa_normalize(predicted), tatqa_normalize(gold)
    em = 1.0 if pred_norm == gold_norm else 0.0
    # one answer string a side (the evaluator joins the spans first), so DROP's one-to-one alignment of bags
    # is a single pair: F1 of the two token sets, rounded to 2 places as upstream rounds it: numpy's round
    # (scale, round half to even), which differs from Python's round() at ties such as 0.975 -> 0.98, not 0.97
    return em, float(np.round(_tatqa_bag_f1(set(pred_norm.split()), set(gold_norm.split())), 2))


def tatqa_gold_answers(doc: dict) -> list[str]:
    """The gold answer list of a TAT-QA question: its spans, or the number (count: as an integer)."""
    answer = doc["answer"]
    if doc["answer_type"] in ("span", "multi-span"):
        return [str(a) for a in answer]
    answer = answer[0] if isinstance(answer, list) else answer
    return [str(int(float(answer)))] if doc["answer_type"] == "count" else [str(answer)]


def tatqa_prediction_spans(text: str) -> list[str]:
    """A generated answer as the evaluator's prediction list: spans separated by ";" (or new lines)."""
    spans = [s.strip().strip(".").strip() for s in re.split(r";|\n", text or "")]
    return [s for s in spans if s]


def tatqa_em_f1(doc: dict, prediction: str | Sequence[str], pred_scale: str = "") -> tuple[float, float]:
    """TAT-QA's exact match and numeracy-aware F1 of one prediction against the gold answer of ``doc``
    (fields ``answer``, ``answer_type``, ``scale``)."""
    pred = tatqa_prediction_spans(prediction) if isinstance(prediction, str) else [str(p) for p in prediction]
    gold = tatqa_gold_answers(doc)
    if not pred or not gold:
        return 0.0, 0.0
    candidates = [tatqa_answer_string(pred, pred_scale)]
    if len(pred) == 1 and not pred_scale and "%" not in pred[0] and tatqa_is_number(pred[0]):
        value = tatqa_to_number(pred[0])  # a bare 0.2342 may stand for 23.42 percent
        if value is not None:
            candidates.append("%.4f" % value)
    em, f1 = max(_tatqa_em_f1_strings(c, tatqa_answer_string(gold, doc["scale"])) for c in candidates)
    if doc["answer_type"] in ("arithmetic", "count"):
        f1 = em
    return em, f1
