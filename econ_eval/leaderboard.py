"""The leaderboard: check runs, add them to ``results/``, build ``results/leaderboard.{json,md,csv}`` and plots.

Every system is a folder of ``results/`` (or ``results/baselines/``) holding lm-eval ``results_*.json``
files; the newest one counts. The build is deterministic: the ``updated`` stamp is the newest run's
date, not the time of the build, so rebuilding from the same files gives identical bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import metrics
from .baselines import BASELINE_TASKS
from .config import BUNDLE_VERSION, REPO_ROOT, results_dir, tasks_dir
from .evaluate import SUITE_TASKS
from .io import RunRejected, atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl  # noqa: F401
from .prompts import CLASS_LABELS

#: task -> (headline metric, column title)
HEADLINE = {
    "econ_titles": ("rougeL", "Titles ROUGE-L"),
    "econ_classify": ("macro_f1", "Classify macro-F1"),
    "econ_qa": ("rougeL", "QA ROUGE-L"),
    "econ_signal": ("f1", "Signal F1"),
    "econ_mmlu": ("acc", "MMLU acc"),
}
SKIP_DIRS = {"runs", "tmp", "benchmarks", "plots"}


# --------------------------------------------------------------------------- reading runs
def newest_results(folder: Path) -> Path | None:
    files = sorted(Path(folder).glob("results_*.json"))
    return files[-1] if files else None


def system_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (one level, plus ``baselines/*``) that holds a results file."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        if d.name == "baselines":
            out += [b for b in sorted(d.iterdir()) if b.is_dir() and newest_results(b)]
        elif newest_results(d):
            out.append(d)
    return out


def _metric(results: dict, task: str, metric: str):
    row = results.get("results", {}).get(task, {})
    for key, value in row.items():
        if key.split(",")[0] == metric and "_stderr" not in key and isinstance(value, (int, float)):
            return float(value)
    return None


def _system_info(folder: Path, results: dict) -> dict:
    stamp = newest_results(folder).name[len("results_"):-len(".json")]
    sysfile = folder / f"system_{stamp}.json"
    info = json.loads(sysfile.read_text()) if sysfile.is_file() else {}
    is_baseline = results.get("config", {}).get("model") == "econ-eval-baseline"
    adapter = info.get("adapter")
    method = "baseline" if is_baseline else (_adapter_method(adapter) if adapter else "base")
    return {
        "system": f"baseline:{folder.name}" if is_baseline else folder.name,
        "base_model": None if is_baseline else info.get("base_model", results.get("model_name")),
        "adapter": Path(adapter).name if adapter else None,
        "method": method,
        "params": _params(info.get("base_model")),
    }


def _adapter_method(adapter: str) -> str:
    cfg = Path(adapter) / "econ_eval_training.json"
    if not cfg.is_absolute():  # published adapters are named relative to the checkout
        cfg = REPO_ROOT / cfg
    if cfg.is_file():
        return json.loads(cfg.read_text()).get("method", "adapter")
    return "adapter"


def _params(base_model: str | None) -> str | None:
    return {"smollm2-135m": "135M"}.get(base_model or "", None)


#: test-label counts of bundle 1.0 (MANIFEST stats), fixed so that rebuilds need no built bundle
CLASSIFY_TEST_COUNTS = {"econ.EM": 138, "econ.GN": 168, "econ.TH": 44}
SIGNAL_TEST_COUNTS = {"0": 669, "1": 81}


def random_baseline(task: str) -> float:
    """Expected headline score of uniform random guessing on bundle 1.0's test sets (0 for generation)."""
    if task == "econ_mmlu":
        return 0.25
    if task == "econ_classify":
        counts = CLASSIFY_TEST_COUNTS
        n, k = sum(counts.values()), len(counts)
        return sum(2 * (c / n) * (1 / k) / (c / n + 1 / k) for c in counts.values()) / k
    if task == "econ_signal":
        counts = SIGNAL_TEST_COUNTS
        p = counts.get("1", 0) / sum(counts.values())
        return 2 * p * 0.5 / (p + 0.5)
    return 0.0


def leaderboard_rows(root: Path) -> list[dict]:
    """One row per system: headline metrics per task and the normalised average."""
    rows = []
    for folder in system_folders(root):
        results = json.loads(newest_results(folder).read_text())
        info = _system_info(folder, results)
        bundle = {results["configs"][t]["metadata"].get("bundle_version") for t in results.get("configs", {})
                  if "metadata" in results["configs"][t]}
        row_metrics, normalised = {}, []
        for task in HEADLINE:
            if task not in results.get("results", {}):
                continue
            vals = {m: _metric(results, task, m) for m in _task_metric_names(results, task)}
            row_metrics[task] = {m: round(v, 4) for m, v in vals.items() if v is not None}
            head = vals.get(HEADLINE[task][0])
            if head is not None:
                base = random_baseline(task)
                normalised.append((head - base) / (1 - base))
        rows.append({**info, "bundle_version": sorted(b for b in bundle if b)[0] if any(bundle) else None,
                     "metrics": row_metrics,
                     "normalised_average": round(sum(normalised) / len(normalised), 4) if normalised else None,
                     "tasks_scored": len(normalised),
                     "results_file": str(newest_results(folder).relative_to(root)),
                     "date": _run_date(results, newest_results(folder))})
    rows.sort(key=lambda r: (-(r["normalised_average"] or -9), r["system"]))
    return rows


def _task_metric_names(results: dict, task: str) -> list[str]:
    return sorted({k.split(",")[0] for k in results["results"][task] if "," in k and "_stderr" not in k})


def _run_date(results: dict, path: Path) -> str:
    stamp = path.name[len("results_"):-len(".json")]
    try:
        return datetime.strptime(stamp[:19], "%Y-%m-%dT%H-%M-%S").replace(tzinfo=timezone.utc).isoformat()
    except ValueError:
        d = results.get("date")
        return datetime.fromtimestamp(float(d), timezone.utc).isoformat() if d else ""


# --------------------------------------------------------------------------- outputs
def to_markdown(rows: list[dict]) -> str:
    head = ["#", "system", "method"] + [HEADLINE[t][1] for t in HEADLINE] + ["normalised avg", "tasks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows, 1):
        cells = [str(i), r["system"], r["method"]]
        for t, (m, _) in HEADLINE.items():
            v = r["metrics"].get(t, {}).get(m)
            cells.append(f"{v:.4f}" if v is not None else "–")
        cells += [f"{r['normalised_average']:.4f}" if r["normalised_average"] is not None else "–",
                  str(r["tasks_scored"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Normalised avg: mean over the scored tasks of (score − random) / (1 − random), where random is "
                 "the expected score of uniform guessing (0 for generation tasks), as FinBen does. "
                 "Baselines cover classify and signal only.")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [f"{t}.{m}" for t, (m, _) in HEADLINE.items()]
    w.writerow(["system", "method", "base_model", "adapter", "bundle_version"] + cols + ["normalised_average"])
    for r in rows:
        w.writerow([r["system"], r["method"], r["base_model"] or "", r["adapter"] or "", r["bundle_version"] or ""]
                   + [r["metrics"].get(t, {}).get(m, "") for t, (m, _) in HEADLINE.items()]
                   + [r["normalised_average"] if r["normalised_average"] is not None else ""])
    return buf.getvalue()


def _plot_bars(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(HEADLINE)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 0.35 * len(rows) + 1.6), sharey=True)
    names = [r["system"] for r in rows]
    for ax, task in zip(axes, tasks):
        m, title = HEADLINE[task]
        vals = [r["metrics"].get(task, {}).get(m, math.nan) for r in rows]
        ax.barh(range(len(rows)), [0 if math.isnan(v) else v for v in vals],
                color=["#4c72b0" if r["method"] != "baseline" else "#999999" for r in rows])
        for y, v in enumerate(vals):
            ax.text(0.01, y, "–" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=7)
        ax.axvline(random_baseline(task), color="#c44e52", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].set_yticks(range(len(rows)), names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("econ-eval leaderboard (red dashed line: random guessing)", fontsize=10)
    fig.tight_layout()
    _save_png(fig, path)


def _save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def confusion_from_samples(samples_file: Path, task: str) -> dict | None:
    """Confusion matrix of a classification run from its logged samples (lm-eval or baseline)."""
    labels = CLASS_LABELS if task.startswith("econ_classify") else [0, 1]
    items = []
    for s in read_jsonl(samples_file):
        resp = s.get("filtered_resps")
        target = s.get("target")
        if task in ("econ_classify", "econ_signal") and resp and isinstance(resp[0], list):  # log-likelihoods
            pred = labels[max(range(len(resp)), key=lambda i: float(resp[i][0]))]
            gold = labels[int(target)]
        else:
            pred = resp[0] if resp else None
            gold = target
            if task.startswith("econ_signal"):
                pred = int(pred) if str(pred) in ("0", "1") else pred
                gold = int(gold) if str(gold) in ("0", "1") else ["No", "Yes"].index(gold)
            elif gold in ("Econometrics", "General Economics", "Theoretical Economics"):
                gold = CLASS_LABELS[["Econometrics", "General Economics", "Theoretical Economics"].index(gold)]
        items.append((gold, pred))
    return metrics.confusion(items, labels) if items else None


def _plot_confusions(root: Path, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for folder in system_folders(root):
        res = newest_results(folder)
        stamp = res.name[len("results_"):-len(".json")]
        mats = {}
        for task in ("econ_classify", "econ_signal"):
            f = folder / f"samples_{task}_{stamp}.jsonl"
            if f.is_file():
                mats[task] = confusion_from_samples(f, task)
        if not mats:
            continue
        fig, axes = plt.subplots(1, len(mats), figsize=(4.2 * len(mats), 3.6))
        axes = [axes] if len(mats) == 1 else axes
        for ax, (task, conf) in zip(axes, mats.items()):
            m = conf["matrix"]
            ax.imshow(m, cmap="Blues")
            for i, row in enumerate(m):
                for j, v in enumerate(row):
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(conf["columns"])), conf["columns"], fontsize=7, rotation=30)
            ax.set_yticks(range(len(conf["labels"])), conf["labels"], fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("gold")
            ax.set_title(task, fontsize=9)
        name = folder.name if folder.parent == root else f"baseline-{folder.name}"
        fig.suptitle(f"{name}: confusion matrices (test)", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"confusion_{name}.png"
        _save_png(fig, path)
        written.append(path)
    return written


def build(root: Path | None = None) -> dict:
    """Write ``leaderboard.{json,md,csv}`` and plots under ``root``; return the JSON document."""
    root = Path(root) if root else results_dir()
    rows = leaderboard_rows(root)
    doc = {"updated": max((r["date"] for r in rows), default=""), "bundle_version": BUNDLE_VERSION,
           "headline_metrics": {t: m for t, (m, _) in HEADLINE.items()}, "rows": rows}
    atomic_write_json(root / "leaderboard.json", doc)
    atomic_write_text(root / "leaderboard.md", to_markdown(rows))
    atomic_write_text(root / "leaderboard.csv", to_csv(rows))
    if rows:
        _plot_bars(rows, root / "plots" / "leaderboard.png")
        _plot_confusions(root, root / "plots")
    return doc


# --------------------------------------------------------------------------- check / add
def task_versions() -> dict[str, float]:
    """The task versions declared by this checkout's YAMLs."""
    out = {}
    for f in sorted(tasks_dir().rglob("*.yaml")):
        cfg = yaml.load(f.read_text(), Loader=_IgnoreTagsLoader)
        if isinstance(cfg, dict) and "task" in cfg and isinstance(cfg["task"], str):
            out[cfg["task"]] = float(cfg.get("metadata", {}).get("version", 0))
    return out


class _IgnoreTagsLoader(yaml.SafeLoader):
    pass


_IgnoreTagsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def check_run(run_dir: Path) -> tuple[Path, dict]:
    """Validate a run folder for the leaderboard; raise :class:`RunRejected` saying what is wrong."""
    run_dir = Path(run_dir)
    files = sorted(run_dir.rglob("results_*.json"))
    if not files:
        raise RunRejected(f"{run_dir}: no results_*.json found (run lm_eval with --output_path)")
    path = files[-1]
    results = json.loads(path.read_text())
    problems = []
    limit = results.get("config", {}).get("limit")
    if limit is not None:
        problems.append(f"made with --limit {limit}: only full test sets are ranked")
    baseline = results.get("config", {}).get("model") == "econ-eval-baseline"
    required = BASELINE_TASKS if baseline else SUITE_TASKS
    missing = [t for t in required if t not in results.get("results", {})]
    if missing:
        problems.append(f"missing task(s) {missing}: run --tasks econ")
    expected = task_versions()
    for task in required:
        if task in results.get("versions", {}) and task in expected and \
                float(results["versions"][task]) != expected[task]:
            problems.append(f"{task} version {results['versions'][task]} differs from this checkout's {expected[task]}")
        meta = results.get("configs", {}).get(task, {}).get("metadata", {})
        if task in results.get("results", {}) and str(meta.get("bundle_version")) != BUNDLE_VERSION:
            problems.append(f"{task} was scored on bundle {meta.get('bundle_version')!r}, not {BUNDLE_VERSION!r}")
    if problems:
        raise RunRejected(f"{path}: refused:\n  - " + "\n  - ".join(problems))
    return path, results


def add_run(run_dir: Path, system: str | None = None, root: Path | None = None) -> Path:
    """Check a run and copy its files into ``results/<system>/``; never overwrite. Returns the folder."""
    path, results = check_run(run_dir)
    root = Path(root) if root else results_dir()
    stamp = path.name[len("results_"):-len(".json")]
    name = system or (results.get("model_name") or path.parent.name).replace("/", "__").split("__")[-1]
    dest = root / name
    sources = [p for p in path.parent.iterdir() if stamp in p.name]
    clashes = [dest / p.name for p in sources if (dest / p.name).exists()]
    if clashes:
        raise FileExistsError(f"{clashes[0]} already exists; not overwriting it")
    dest.mkdir(parents=True, exist_ok=True)
    for p in sources:
        shutil.copy2(p, dest / p.name)
    return dest
