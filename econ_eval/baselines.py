"""Classic baselines on the bundle's splits, scored with the same metric functions as the lm-eval tasks.

Six scikit-learn / XGBoost models on TF-IDF features and two small PyTorch recurrent nets (RNN, LSTM)
for the classification tasks of the registry (``baselines=True``). Each model's hyper-parameter is chosen on the validation split
(the headline metric), then it is refit on train and scored once on test. Results are written in
lm-eval's ``results_*.json`` shape under ``results/baselines/<name>/`` (with per-document samples),
so the leaderboard reads them like any lm-eval run.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import metrics, run_folder, tasks
from .config import BUNDLE_VERSION, DEFAULT_SEED, results_dir
from .io import read_jsonl

SEED = DEFAULT_SEED
BASELINE_TASKS = tuple(tasks.names(baselines=True))


@dataclass(frozen=True)
class TaskData:
    name: str
    texts: dict[str, list[str]]
    labels: dict[str, list]
    ids: dict[str, list]
    binary: bool
    #: per split, the question type of each document where the headline metric averages over types (Headlines)
    groups: dict[str, list] | None = None


def task_text(task: str, doc: dict) -> str:
    """The text a classic baseline sees: the same content the LLM prompt carries, without instructions."""
    return tasks.task(task).baseline_text(doc)


def load_task(bundle: Path, task: str) -> TaskData:
    """Texts, gold labels and ids of one task's splits."""
    texts, labels, ids, groups = {}, {}, {}, {}
    spec = tasks.task(task)
    for split in ("train", "validation", "test"):
        rows = read_jsonl(Path(bundle) / task / f"{split}.jsonl")
        texts[split] = [task_text(task, r) for r in rows]
        labels[split] = [spec.gold_label(r) for r in rows]
        ids[split] = [r.get("paper_id", r.get("newid", r.get("id"))) for r in rows]
        if spec.headline == "avg_f1":
            groups[split] = [r["label_type"] for r in rows]
    return TaskData(task, texts, labels, ids, binary=len(spec.labels) == 2, groups=groups or None)


def headline(task: TaskData, split: str, pred) -> float:
    """The task's headline metric on ``split`` (macro F1, positive-class F1, or FinBen's avg F1 over question
    types), from :mod:`econ_eval.metrics`."""
    gold = task.labels[split]
    if task.groups:
        return metrics.avg_f1(list(zip(task.groups[split], gold, pred)))
    return (metrics.f1 if task.binary else metrics.macro_f1)(list(zip(gold, pred)))


# --------------------------------------------------------------------------- scikit-learn models
def _sk_models() -> dict[str, tuple[Callable[[float], object], list]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    def xgb(depth):
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=300, max_depth=int(depth), learning_rate=0.1, subsample=0.9,
                             colsample_bytree=0.5, random_state=SEED, n_jobs=os.cpu_count(), verbosity=0)

    return {
        "logistic_regression": (lambda c: LogisticRegression(C=c, max_iter=2000, class_weight="balanced",
                                                             random_state=SEED), [0.3, 1.0, 3.0, 10.0, 30.0]),
        "svc": (lambda c: LinearSVC(C=c, class_weight="balanced", random_state=SEED), [0.03, 0.1, 0.3, 1.0, 3.0]),
        "knn": (lambda k: KNeighborsClassifier(n_neighbors=int(k), weights="distance", metric="cosine"),
                [3, 5, 11, 21]),
        "random_forest": (lambda d: RandomForestClassifier(n_estimators=300, max_depth=d, class_weight="balanced",
                                                           random_state=SEED, n_jobs=os.cpu_count()),
                          [None, 30]),
        "decision_tree": (lambda d: DecisionTreeClassifier(max_depth=d, class_weight="balanced", random_state=SEED),
                          [10, 30, None]),
        "xgboost": (xgb, [4, 8]),
    }


def run_sklearn(name: str, task: TaskData) -> tuple[list, dict]:
    """Fit one TF-IDF model, picking its parameter on validation; return test predictions and info."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import LabelEncoder

    make, grid = _sk_models()[name]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50000, sublinear_tf=True)
    x_train = vec.fit_transform(task.texts["train"])
    x_val, x_test = vec.transform(task.texts["validation"]), vec.transform(task.texts["test"])
    enc = LabelEncoder().fit(task.labels["train"])
    y_train = enc.transform(task.labels["train"])
    if name == "xgboost" and task.binary:  # XGBoost has no class_weight: weight the rare positives instead
        pos = max(int(y_train.sum()), 1)
        sample_weight = np.where(y_train == 1, (len(y_train) - pos) / pos, 1.0)
    else:
        sample_weight = None
    if name == "knn":  # k must stay below the number of training documents
        grid = [k for k in grid if k < len(y_train)] or [1]
    best = (-1.0, None, None)
    for param in grid:
        model = make(param)
        model.fit(x_train, y_train, **({"sample_weight": sample_weight} if sample_weight is not None else {}))
        val_pred = list(enc.inverse_transform(model.predict(x_val)))
        s = headline(task, "validation", val_pred)
        if s > best[0]:
            best = (s, param, model)  # the chosen model itself: refitting it (seeded) gave the same model again
    model = best[2]
    pred = [p.item() if hasattr(p, "item") else p for p in enc.inverse_transform(model.predict(x_test))]
    return pred, {"param": best[1], "validation_headline": round(best[0], 4), "features": "tf-idf 1-2 grams"}


# --------------------------------------------------------------------------- PyTorch RNN / LSTM
def _tokenise(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z0-9]+", text.lower())


def run_recurrent(cell: str, task: TaskData, *, epochs: int = 8, max_len: int = 200, progress: bool = True) -> tuple[list, dict]:
    """Train a one-layer bidirectional RNN/LSTM classifier; keep the epoch with the best validation score."""
    import torch
    from torch import nn
    from tqdm.auto import tqdm

    torch.manual_seed(SEED)
    random.seed(SEED)
    counts: dict[str, int] = {}
    for t in task.texts["train"]:
        for w in _tokenise(t):
            counts[w] = counts.get(w, 0) + 1
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}
    classes = sorted(set(task.labels["train"]))

    def encode(split):
        ids = [[vocab.get(w, 1) for w in _tokenise(t)][:max_len] or [1] for t in task.texts[split]]
        x = torch.zeros(len(ids), max_len, dtype=torch.long)
        lengths = torch.tensor([len(s) for s in ids])
        for i, s in enumerate(ids):
            x[i, : len(s)] = torch.tensor(s)
        return x, lengths

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(len(vocab) + 2, 64, padding_idx=0)
            rnn_cls = nn.LSTM if cell == "lstm" else nn.RNN
            self.rnn = rnn_cls(64, 64, batch_first=True, bidirectional=True)
            self.out = nn.Linear(128, len(classes))

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
            mask = (torch.arange(out.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
            return self.out((out * mask).sum(1) / lengths[:, None])  # mean over real tokens

    x_tr, l_tr = encode("train")
    y_tr = torch.tensor([classes.index(y) for y in task.labels["train"]])
    x_va, l_va = encode("validation")
    x_te, l_te = encode("test")
    freq = torch.bincount(y_tr, minlength=len(classes)).float()
    model = Net()
    loss_fn = nn.CrossEntropyLoss(weight=freq.sum() / (len(classes) * freq))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def predict(x, lengths):
        model.eval()
        with torch.no_grad():
            return [classes[i] for i in model(x, lengths).argmax(-1).tolist()]

    best = (-1.0, None, 0)
    for epoch in tqdm(range(epochs), desc=f"{cell} {task.name}", disable=not progress, leave=False):
        model.train()
        perm = torch.randperm(len(y_tr))
        for start in range(0, len(perm), 32):
            idx = perm[start: start + 32]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx], l_tr[idx]), y_tr[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        s = headline(task, "validation", predict(x_va, l_va))
        if s > best[0]:
            best = (s, {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
    model.load_state_dict(best[1])
    return predict(x_te, l_te), {"best_epoch": best[2], "validation_headline": round(best[0], 4),
                                 "vocab": len(vocab), "hidden": 64, "max_len": max_len}


BASELINES = ["logistic_regression", "svc", "random_forest", "xgboost", "knn", "decision_tree", "lstm", "rnn"]


def run_baseline(name: str, task: TaskData) -> tuple[list, dict]:
    """Test-set predictions of baseline ``name`` on ``task``."""
    if name in ("rnn", "lstm"):
        return run_recurrent(name, task)
    return run_sklearn(name, task)


def results_document(name: str, per_task: dict[str, dict], manifest: dict) -> dict:
    """An lm-eval-shaped results document for one baseline system."""
    results, configs, n_samples, versions = {}, {}, {}, {}
    for task, info in per_task.items():
        items = list(zip(info["gold"], info["pred"]))
        binary = len(tasks.task(task).labels) == 2
        names = ["precision", "recall", "f1", "mcc"] if binary else \
            ["macro_f1", "weighted_f1", "macro_precision", "macro_recall", "mcc"]
        row = {"alias": task}
        acc = [float(g == p) for g, p in items]
        row["acc,none"] = float(np.mean(acc))
        row["acc_stderr,none"] = float(np.std(acc, ddof=1) / np.sqrt(len(acc)))
        if info.get("groups"):  # Headlines: FinBen's avg F1 over question types, on (type, gold, pred) items
            typed = list(zip(info["groups"], info["gold"], info["pred"]))
            row["avg_f1,none"] = metrics.avg_f1(typed)
            row["avg_f1_stderr,none"] = metrics.bootstrap_stderr(metrics.avg_f1, typed)
        for m in names:
            fn = metrics.CORPUS_METRICS[m]
            row[f"{m},none"] = fn(items)
            row[f"{m}_stderr,none"] = metrics.bootstrap_stderr(fn, items)
        head = tasks.task(task).headline
        row["score,none"], row["score_stderr,none"] = row[f"{head},none"], row[f"{head}_stderr,none"]
        results[task] = row
        meta = {"version": 1.0, "bundle_version": manifest["bundle_version"], "headline_metric": head,
                "baseline": info["info"]}
        fingerprint = manifest.get("test_fingerprints", {}).get(task, {}).get("test_sha256")
        if fingerprint:
            meta["test_sha256"] = fingerprint
        configs[task] = {"task": task, "metadata": meta}
        n_samples[task] = {"original": len(items), "effective": len(items)}
        versions[task] = 1.0
    return {
        "results": results, "configs": configs, "versions": versions, "n-samples": n_samples,
        "config": {"model": "econ-eval-baseline", "model_args": f"baseline={name}", "limit": None},
        "model_name": f"baseline:{name}", "chat_template": None, "date": time.time(),
    }


def run_baselines(names: list[str], tasks: list[str], bundle: Path, out_root: Path | None = None,
                  log=print) -> dict[str, Path]:
    """Run baselines on the bundle's tasks and file each one's results; return the results paths."""
    from .data.build import verify_bundle

    manifest = verify_bundle(bundle)
    if manifest["bundle_version"] != BUNDLE_VERSION:
        log(f"note: bundle version {manifest['bundle_version']} (the tasks default to {BUNDLE_VERSION})")
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise KeyError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    bad = [t for t in tasks if t not in BASELINE_TASKS]
    if bad:
        raise KeyError(f"baselines run on {', '.join(BASELINE_TASKS)} only, not {bad}")
    data = {t: load_task(bundle, t) for t in tasks}
    out_root = Path(out_root) if out_root else results_dir() / "baselines"
    stamp = run_folder.new_stamp()
    written = {}
    for name in names:
        per_task = {}
        for t, td in data.items():
            t0 = time.time()
            pred, info = run_baseline(name, td)
            info["train_seconds"] = round(time.time() - t0, 1)
            per_task[t] = {"gold": td.labels["test"], "pred": pred, "info": info, "ids": td.ids["test"],
                           "groups": td.groups["test"] if td.groups else None}
            log(f"{name:<20} {t:<14} headline {headline(td, 'test', pred):.4f}  ({info})")
        doc = results_document(name, per_task, manifest)
        folder = out_root / name
        written[name] = run_folder.write_results(folder, stamp, doc, {t: [
            {"doc_id": i, "doc": {"id": ident}, "target": g, "filtered_resps": [p]}
            for i, (ident, g, p) in enumerate(zip(info["ids"], info["gold"], info["pred"]))]
            for t, info in per_task.items()})
    return written


def _cmd_baselines(args) -> int:
    from .lm_tasks import bundle_path

    names = args.names.split(",") if args.names else BASELINES
    written = run_baselines(names, args.tasks.split(","), bundle_path(),
                            Path(args.output) if args.output else None)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    bl = sub.add_parser("baselines", help="classic baselines (TF-IDF + sklearn/XGBoost, RNN, LSTM) on the bundle")
    bl.add_argument("--tasks", default=",".join(BASELINE_TASKS), help="(default: %(default)s)")
    bl.add_argument("--names", help="comma-separated subset of: logistic_regression, svc, random_forest, xgboost, "
                    "knn, decision_tree, lstm, rnn (default: all)")
    bl.add_argument("--output", help="folder for results (default: results/baselines)")
    bl.set_defaults(func=_cmd_baselines)
