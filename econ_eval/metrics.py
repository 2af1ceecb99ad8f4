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
