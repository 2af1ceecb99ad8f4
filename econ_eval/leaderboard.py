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

from . import config, metrics, run_folder, tasks
from .baselines import BASELINE_TASKS
from .config import BUNDLE_VERSION, DEFAULT_MODEL, REPO_ROOT, results_dir
from .evaluate import SUITE_TASKS
from .lite import is_lite
from .io import DataError, RunRejected, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, read_jsonl
from .run_folder import newest_results

#: task -> (headline metric, column title): one column per task family, from the registry
HEADLINE = {t.name: (t.headline, t.title) for t in tasks.TASKS.values() if t.on_leaderboard}
SKIP_DIRS = {"runs", "tmp", "benchmarks", "plots", "archive"}  # archive: runs on older bundles


# --------------------------------------------------------------------------- reading runs
def system_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (one level, plus ``baselines/*``) that holds a results file."""
    if not Path(root).is_dir():
        raise DataError(f"{root}: results folder not found; pass --results a folder of runs "
                        "(one folder per system, as in results/)")
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


def _system_info(folder: Path, results: dict, path: Path) -> dict:
    sysfile = run_folder.system_file(path)
    info = read_json(sysfile, what="system file") if sysfile.is_file() else {}
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
    return {DEFAULT_MODEL: "135M"}.get(base_model or "", None)


#: test-label counts of the published bundle (MANIFEST stats; a test compares them with a real build),
#: fixed so that rebuilds need no built bundle
CLASSIFY_TEST_COUNTS = {"econ.EM": 246, "econ.GN": 329, "econ.TH": 125}
SIGNAL_TEST_COUNTS = {"0": 669, "1": 81}
#: the sentence tasks' test labels (MANIFEST stats["sentence_tasks"]["test_labels"])
SENTENCE_TEST_COUNTS = {"econ_fomc": {"dovish": 113, "hawkish": 106, "neutral": 206},
                        "econ_fpb": {"negative": 121, "neutral": 576, "positive": 273},
                        "econ_fiqasa": {"negative": 74, "neutral": 18, "positive": 139}}
#: z of a two-sided 95% normal interval: headline scores are shown as score ± Z95 * bootstrap/lm-eval stderr
Z95 = 1.959964


def random_baseline(task: str) -> float:
    """Expected headline score of uniform random guessing on the published test sets (0 for generation)."""
    counts = {"econ_classify": CLASSIFY_TEST_COUNTS, "econ_signal": SIGNAL_TEST_COUNTS, **SENTENCE_TEST_COUNTS}
    spec = tasks.task(task)
    return spec.random_headline(counts.get(spec.bundle_task))


def accepted_results(folder: Path, expected: "Expected") -> tuple[dict[str, Path], dict[Path, dict], list[dict]]:
    """Which results file of ``folder`` each task's score comes from: per task, the newest file that has it
    and passes the checks for it (:func:`_read_and_check_parts`), so a later run of extra tasks (the finance group,
    say) adds columns without replacing the suite run. Returns ``({task: file}, {file: document}, skipped)``;
    ``skipped`` lists newer files (or tasks of them) that were not used and why: a ``--limit`` smoke run or
    a quick-suite run filed into a system's folder never replaces its full run. The folder is refused
    (empty mapping) when its usable files together miss a task the leaderboard requires."""
    skipped, task_files, documents = [], {}, {}
    baseline = False
    for path in reversed(run_folder.results_files(folder)):
        results, file_problems, per_task = _read_and_check_parts(path, expected)
        if file_problems:
            skipped.append({"results_file": path.name, "problems": file_problems})
            continue
        baseline = baseline or _is_baseline(results)
        # registry tasks only: a group's score (``econ``) is recomputed from its members (merged_results)
        used = [t for t in results.get("results", {}) if t in tasks.TASKS and t not in task_files and t not in per_task]
        for task in used:
            task_files[task] = path
        if used:
            documents[path] = results
        newer_refused = [p for t, p in per_task.items() if t not in task_files]
        if newer_refused:
            skipped.append({"results_file": path.name, "problems": newer_refused})
    missing = [t for t in _required_tasks(baseline) if t not in task_files]
    if missing and task_files:
        skipped.append({"results_file": max(task_files.values()).name,
                        "problems": [f"missing task(s) {missing}: run --tasks econ"]})
    if missing:
        return {}, {}, skipped
    return task_files, documents, skipped


def leaderboard_rows(root: Path, expected: "Expected | None" = None, skipped: list | None = None) -> list[dict]:
    """One row per system: headline metrics per task and the normalised average.

    Every results file is checked as ``leaderboard check`` does (per task, see :func:`accepted_results`);
    refused ones are left out and, when ``skipped`` is a list, reported there.
    """
    expected = expected or Expected.published()
    rows = []
    for folder in system_folders(root):
        task_files, documents, refused = accepted_results(folder, expected)
        if skipped is not None:
            skipped += [{"system": str(folder.relative_to(root)), **r} for r in refused]
        if not task_files:
            continue
        # the run of the suite's first task describes the system (model, adapter, bundle)
        path = task_files.get(SUITE_TASKS[0]) or next(iter(task_files.values()))
        results = documents[path]
        info = _system_info(folder, results, path)
        bundle = {documents[task_files[t]]["configs"][t]["metadata"].get("bundle_version") for t in task_files
                  if "metadata" in documents[task_files[t]].get("configs", {}).get(t, {})}
        row_metrics, normalised, intervals = {}, {}, {}
        for task in HEADLINE:
            if task not in task_files:
                continue
            res = documents[task_files[task]]
            vals = {m: _metric(res, task, m) for m in _task_metric_names(res, task)}
            row_metrics[task] = {m: round(v, 4) for m, v in vals.items() if v is not None}
            head = vals.get(HEADLINE[task][0])
            if head is not None:
                base = random_baseline(task)
                normalised[task] = (head - base) / (1 - base)
                se = _stderr(res, task, HEADLINE[task][0])
                if se is not None and math.isfinite(se):
                    # headline metrics are shares in [0, 1]: the normal interval is clipped to that range
                    intervals[task] = [round(max(head - Z95 * se, 0.0), 4), round(min(head + Z95 * se, 1.0), 4)]
        rows.append({**info, "bundle_version": sorted(b for b in bundle if b)[0] if any(bundle) else None,
                     "metrics": row_metrics, "headline_ci95": intervals, "_normalised": normalised,
                     "normalised_average": round(sum(normalised.values()) / len(normalised), 4) if normalised else None,
                     "tasks_scored": len(normalised),
                     "results_file": str(path.relative_to(root)),
                     "task_files": {t: str(p.relative_to(root)) for t, p in task_files.items()},
                     "date": _run_date(results, path)})
    return rank(rows)


def merged_results(folder: Path, expected: "Expected | None" = None) -> dict | None:
    """One lm-eval-shaped results document of a system folder: each task's entry from the run the leaderboard
    takes it from (:func:`accepted_results`), and each group's ``score`` recomputed as the unweighted mean of
    its members' scores when all of them are present (what lm-eval's group aggregate computes), so a group
    score never mixes runs with different member lists. None when the folder is refused."""
    task_files, documents, _ = accepted_results(Path(folder), expected or Expected.published())
    if not task_files:
        return None
    out = {"results": {}, "n-samples": {}, "configs": {}}
    for task, path in task_files.items():
        doc = documents[path]
        out["results"][task] = doc["results"][task]
        for key in ("n-samples", "configs"):
            if task in doc.get(key, {}):
                out[key][task] = doc[key][task]
    for group, members in tasks.group_members().items():
        scores = [out["results"].get(m, {}).get("score,none") for m in members]
        if members and all(isinstance(v, (int, float)) for v in scores):
            out["results"][group] = {"alias": group, "score,none": sum(scores) / len(scores)}
    return out


def task_file(row: dict, task: str) -> str:
    """The results file (relative to the results folder) a leaderboard row's ``task`` score comes from."""
    return row.get("task_files", {}).get(task, row["results_file"])


def rank(rows: list[dict]) -> list[dict]:
    """Rank rows by the normalised average over the tasks they ALL have (``common_average``), so a system
    scored on 2 tasks is not ranked against one scored on 5 by different averages; ties by the all-task
    average, then name. Each row gets ``rank`` and ``common_average``; the task set is ``common_tasks_of``."""
    common = common_tasks_of(rows)
    for r in rows:
        norm = r.pop("_normalised")
        r["common_average"] = round(sum(norm[t] for t in common) / len(common), 4) if common else None
    rows.sort(key=lambda r: (-(r["common_average"] if r["common_average"] is not None else -9),
                             -(r["normalised_average"] if r["normalised_average"] is not None else -9), r["system"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def _stderr(results: dict, task: str, metric: str) -> float | None:
    """The standard error lm-eval (or a baseline) reports for ``metric`` of ``task`` (bootstrap for corpus
    metrics), or None when there is none (lm-eval writes "N/A")."""
    row = results.get("results", {}).get(task, {})
    for key, value in row.items():
        if key.split(",")[0] == f"{metric}_stderr" and isinstance(value, (int, float)):
            return float(value)
    return None


def _task_metric_names(results: dict, task: str) -> list[str]:
    return sorted({k.split(",")[0] for k in results["results"][task] if "," in k and "_stderr" not in k})


def _run_date(results: dict, path: Path) -> str:
    stamp = run_folder.stamp_of(path)
    try:
        return datetime.strptime(stamp[:19], "%Y-%m-%dT%H-%M-%S").replace(tzinfo=timezone.utc).isoformat()
    except ValueError:
        d = results.get("date")
        return datetime.fromtimestamp(float(d), timezone.utc).isoformat() if d else ""


# --------------------------------------------------------------------------- outputs
def headline_cell(row: dict, task: str) -> str:
    """A leaderboard row's headline score of ``task`` with its 95% interval, e.g. ``0.792 [0.761, 0.823]``."""
    v = row["metrics"].get(task, {}).get(HEADLINE[task][0])
    if v is None:
        return "–"
    ci = row.get("headline_ci95", {}).get(task)
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def to_markdown(rows: list[dict]) -> str:
    """The leaderboard table (rank on the tasks every system has; each headline with its 95% interval)."""
    common = common_tasks_of(rows)
    head = ["#", "system", "method"] + [HEADLINE[t][1] for t in HEADLINE] + \
        [f"avg ({len(common)} common tasks)", "avg (all tasks)", "tasks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["rank"]), r["system"], r["method"]] + [headline_cell(r, t) for t in HEADLINE]
        cells += [f"{r['common_average']:.4f}" if r.get("common_average") is not None else "–",
                  f"{r['normalised_average']:.4f}" if r["normalised_average"] is not None else "–",
                  str(r["tasks_scored"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    names = ", ".join(HEADLINE[t][1] for t in common) or "none"
    lines.append(f"Ranked by the normalised average over the tasks every system was scored on ({names}): "
                 "(score − random) / (1 − random), where random is the expected score of uniform guessing (0 for "
                 "generation tasks), the Open LLM Leaderboard v2's normalisation (FinBen averages raw scores). "
                 "`avg (all tasks)` averages every task a system has (baselines cover the classification tasks only: "
                 f"{', '.join(HEADLINE[t][1] for t in BASELINE_TASKS if t in HEADLINE)}). "
                 "Brackets: 95% interval of each headline score (± 1.96 bootstrap standard errors); systems whose "
                 "intervals overlap are not clearly distinguishable on that task.")
    return "\n".join(lines) + "\n"


def common_tasks_of(rows: list[dict]) -> list[str]:
    """The common task set of ranked rows (those with a headline for every row)."""
    return [t for t in HEADLINE if rows and all(HEADLINE[t][0] in r["metrics"].get(t, {}) for r in rows)]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [f"{t}.{m}" for t, (m, _) in HEADLINE.items()]
    cis = [f"{t}.{m}.ci95_{end}" for t, (m, _) in HEADLINE.items() for end in ("low", "high")]
    w.writerow(["rank", "system", "method", "base_model", "adapter", "bundle_version"] + cols + cis
               + ["common_average", "normalised_average"])
    for r in rows:
        ci = [(r.get("headline_ci95", {}).get(t) or ["", ""])[k] for t in HEADLINE for k in (0, 1)]
        w.writerow([r["rank"], r["system"], r["method"], r["base_model"] or "", r["adapter"] or "",
                    r["bundle_version"] or ""]
                   + [r["metrics"].get(t, {}).get(m, "") for t, (m, _) in HEADLINE.items()] + ci
                   + [r["common_average"] if r.get("common_average") is not None else "",
                      r["normalised_average"] if r["normalised_average"] is not None else ""])
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
        cis = [r.get("headline_ci95", {}).get(task) for r in rows]
        err = [[0 if not ci or math.isnan(v) else v - ci[0] for v, ci in zip(vals, cis)],
               [0 if not ci or math.isnan(v) else ci[1] - v for v, ci in zip(vals, cis)]]
        ax.barh(range(len(rows)), [0 if math.isnan(v) else v for v in vals], xerr=err,
                error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"},
                color=["#4c72b0" if r["method"] != "baseline" else "#999999" for r in rows])
        for y, v in enumerate(vals):
            ax.text(0.01, y, "–" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=7)
        ax.axvline(random_baseline(task), color="#c44e52", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].set_yticks(range(len(rows)), names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("econ-eval leaderboard (whiskers: 95% interval; red dashed line: random guessing)", fontsize=10)
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
    spec = tasks.task(task)
    labels = list(spec.labels)
    as_label = {str(v): v for v in labels} | {n: v for n, v in zip(spec.label_names, labels)}
    items = []
    for s in read_jsonl(samples_file):
        resp = s.get("filtered_resps")
        target = s.get("target")
        if spec.output_type == "multiple_choice" and resp and isinstance(resp[0], list):  # log-likelihoods
            pred = labels[max(range(len(resp)), key=lambda i: float(resp[i][0]))]
            gold = labels[int(target)]
        else:  # a generated (filtered) label, or a baseline's prediction
            pred = resp[0] if resp else None
            pred, gold = as_label.get(str(pred), pred), as_label.get(str(target), target)
        items.append((gold, pred))
    return metrics.confusion(items, labels) if items else None


def _plot_confusions(root: Path, rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for row in rows:
        folder, mats = (root / row["results_file"]).parent, {}
        for task in tasks.names(baselines=True):  # the classification tasks of the leaderboard
            f = run_folder.samples_file(root / task_file(row, task), task)
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


def build(root: Path | None = None, bundle: Path | None = None, log=print) -> dict:
    """Write ``leaderboard.{json,md,csv}`` and plots under ``root``; return the JSON document.

    Each system's newest run that passes ``leaderboard check`` is ranked; refused runs are listed in the
    document's ``skipped`` and printed. ``bundle``: check against that bundle instead of the published one.
    """
    root = Path(root) if root else results_dir()
    expected = Expected.from_bundle(bundle) if bundle else Expected.published()
    skipped: list[dict] = []
    rows = leaderboard_rows(root, expected, skipped)
    for s in skipped:
        log(f"skipped {s['system']}/{s['results_file']}: " + "; ".join(s["problems"]))
    doc = {"updated": max((r["date"] for r in rows), default=""), "bundle_version": expected.bundle_version,
           "headline_metrics": {t: m for t, (m, _) in HEADLINE.items()}, "ranked_on": common_tasks_of(rows),
           "interval": "95%: headline ± 1.96 standard errors", "rows": rows, "skipped": skipped}
    atomic_write_json(root / "leaderboard.json", doc)
    atomic_write_text(root / "leaderboard.md", to_markdown(rows))
    atomic_write_text(root / "leaderboard.csv", to_csv(rows))
    if rows:
        _plot_bars(rows, root / "plots" / "leaderboard.png")
        _plot_confusions(root, rows, root / "plots")
    return doc


# --------------------------------------------------------------------------- check / add
def task_versions() -> dict[str, float]:
    """The task versions declared by this checkout's YAMLs (templates merged)."""
    return {name: float(cfg.get("metadata", {}).get("version", 0)) for name, cfg in tasks.yaml_configs().items()}


class Expected:
    """What a ranked run must have been scored on: a bundle version, its test-split fingerprints, and this
    checkout's task versions (read once, not once per results file)."""

    def __init__(self, bundle_version: str, fingerprints: dict):
        self.bundle_version, self.fingerprints = bundle_version, fingerprints
        self.task_versions = task_versions()

    @classmethod
    def published(cls) -> "Expected":
        """The published bundle (``econ_eval/data/published_fingerprints.json``, checked against a real build)."""
        from .data.build import published_fingerprints

        return cls(BUNDLE_VERSION, published_fingerprints())

    @classmethod
    def from_bundle(cls, bundle: Path) -> "Expected":
        """A bundle built here (its MANIFEST.json, verified)."""
        from .data.build import verify_bundle

        manifest = verify_bundle(Path(bundle))
        return cls(str(manifest["bundle_version"]), manifest.get("test_fingerprints", {}))


def _bundle_task(results: dict, task: str) -> str:
    return (results.get("configs", {}).get(task, {}).get("dataset_kwargs") or {}).get("bundle_task", task)


def _fingerprint_problem(path: Path, results: dict, task: str, expected: Expected) -> str | None:
    """Why ``task``'s test documents are not the expected ones (None when they are).

    Runs record the test file's sha256 in the task metadata; older runs are checked through the ids of
    the documents in their logged samples.
    """
    from .data.build import doc_identity, ids_fingerprint

    folder = _bundle_task(results, task)
    want = expected.fingerprints.get(folder)
    if not want:
        return f"{task}: no test fingerprint is known for bundle folder {folder!r}"
    recorded = results.get("configs", {}).get(task, {}).get("metadata", {}).get("test_sha256")
    if recorded:
        return None if recorded == want["test_sha256"] else (
            f"{task} was scored on other test documents (test_sha256 {recorded[:12]}…, expected "
            f"{want['test_sha256'][:12]}…): a bundle built with another seed or split")
    samples = run_folder.samples_file(path, task)
    if not samples.is_file():
        return f"{task}: no test fingerprint recorded and no logged samples to check the test documents against"
    rows = sorted(read_jsonl(samples), key=lambda r: r.get("doc_id", 0))
    try:
        ids = [str(r["doc"]["id"]) if "id" in r["doc"] else doc_identity(folder, r["doc"]) for r in rows]
    except (KeyError, TypeError):
        return f"{samples}: logged docs lack their ids; cannot check the test documents"
    if ids_fingerprint(ids) != want["test_ids_sha256"]:
        return f"{task} was scored on other test documents than bundle {expected.bundle_version}'s (ids differ)"
    return None


def check_results(path: Path, expected: Expected | None = None) -> list[str]:
    """Everything that keeps one results file, on its own, off the leaderboard (empty list: accepted)."""
    results, file_problems, per_task = _read_and_check_parts(path, expected or Expected.published())
    missing = [t for t in _required_tasks(_is_baseline(results)) if t not in results.get("results", {})]
    return file_problems + ([f"missing task(s) {missing}: run --tasks econ"] if missing else []) + list(per_task.values())


def _is_baseline(results: dict) -> bool:
    return results.get("config", {}).get("model") == "econ-eval-baseline"


def _required_tasks(baseline: bool) -> list[str]:
    """The tasks a system must have: the suite's (a baseline: the suite tasks it can do)."""
    return [t for t in BASELINE_TASKS if t in SUITE_TASKS] if baseline else list(SUITE_TASKS)


def _read_and_check_parts(path: Path, expected: Expected) -> tuple[dict, list[str], dict[str, str]]:
    """The results document of ``path``, what keeps the whole file off the leaderboard (a ``--limit`` or
    quick-suite run), and per task of the file what keeps that task's score off (version, bundle, test
    documents)."""
    results = read_json(path, what="lm-eval results file")
    if not isinstance(results, dict):
        return {}, [f"{path}: not an lm-eval results document"], {}
    problems = []
    limit = results.get("config", {}).get("limit")
    if limit is not None:
        problems.append(f"made with --limit {limit}: only full test sets are ranked")
    quick = [t for t in results.get("results", {}) if is_lite(t)]
    if quick:
        problems.append(f"a quick-suite run ({', '.join(sorted(quick)[:3])}{' ...' if len(quick) > 3 else ''}): "
                        "econlite subsets are first looks, only full test sets are ranked; run --tasks econ")
    if problems:
        return results, problems, {}
    versions = expected.task_versions
    per_task = {}
    for task in results.get("results", {}):
        if task not in tasks.TASKS or tasks.task(task).lite_of:
            continue  # groups and tasks outside the registry are not scored
        meta = results.get("configs", {}).get(task, {}).get("metadata", {})
        if task in results.get("versions", {}) and task in versions and \
                float(results["versions"][task]) != versions[task]:
            per_task[task] = f"{task} version {results['versions'][task]} differs from this checkout's {versions[task]}"
        elif str(meta.get("bundle_version")) != expected.bundle_version:
            per_task[task] = (f"{task} was scored on bundle {meta.get('bundle_version')!r}, not "
                              f"{expected.bundle_version!r}")
        else:
            problem = _fingerprint_problem(path, results, task, expected)
            if problem:
                per_task[task] = problem
    return results, problems, per_task


def check_run(run_dir: Path, bundle: Path | None = None) -> tuple[Path, dict]:
    """Validate a run folder's newest results for the leaderboard; raise :class:`RunRejected` saying why not."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a folder; pass the folder lm_eval --output_path wrote to")
    files = run_folder.results_files(run_dir, recursive=True)
    if not files:
        raise RunRejected(f"{run_dir}: no results_*.json found (run lm_eval with --output_path)")
    path = files[-1]
    expected = Expected.from_bundle(bundle) if bundle else Expected.published()
    results = read_json(path, what="lm-eval results file")
    problems = check_results(path, expected)
    if problems:
        raise RunRejected(f"{path}: refused:\n  - " + "\n  - ".join(problems))
    return path, results


def add_run(run_dir: Path, system: str | None = None, root: Path | None = None, bundle: Path | None = None) -> Path:
    """Check a run and copy its files into ``results/<system>/``; never overwrite. Returns the folder."""
    path, results = check_run(run_dir, bundle)
    root = Path(root) if root else results_dir()
    stamp = run_folder.stamp_of(path)
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


def _cmd_leaderboard_build(args) -> int:
    doc = build(Path(args.results) if args.results else None, Path(args.bundle) if args.bundle else None)
    root = Path(args.results) if args.results else config.results_dir()
    if args.readme:
        from .readme_blocks import update_results_blocks

        changed = update_results_blocks(Path(args.readme), root)
        print(f"{args.readme}: " + (f"updated {', '.join(changed)}" if changed else "tables already current"))
    print((root / "leaderboard.md").read_text())
    print(f"{len(doc['rows'])} systems -> {root}/leaderboard.{{json,md,csv}}, plots in {root}/plots/"
          + (f"; {len(doc['skipped'])} run(s) refused and skipped (listed above and in leaderboard.json)"
             if doc["skipped"] else ""))
    return 0


def _cmd_leaderboard_check(args) -> int:
    path, _ = check_run(Path(args.run_dir), Path(args.bundle) if args.bundle else None)
    print(f"{path}: accepted")
    return 0


def _cmd_leaderboard_add(args) -> int:
    dest = add_run(Path(args.run_dir), args.system, bundle=Path(args.bundle) if args.bundle else None)
    print(f"added to {dest}; run `econ-eval leaderboard build` to update the tables")
    return 0


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    lb = sub.add_parser("leaderboard", help="build the leaderboard; check or add runs").add_subparsers(
        dest="lb_cmd", required=True)
    lbb = lb.add_parser("build", help="write results/leaderboard.{json,md,csv} and plots")
    lbb.add_argument("--results", help="results folder (default: results/)")
    bundle_help = ("check runs against this built bundle's version and test fingerprints instead of the "
                   "published bundle's")
    lbb.add_argument("--bundle", help=bundle_help)
    lbb.add_argument("--readme", help="also write the table between the leaderboard markers of this README")
    lbb.set_defaults(func=_cmd_leaderboard_build)
    lbc = lb.add_parser("check", help="refuse --limit runs, other bundle versions, changed task versions, missing tasks")
    lbc.add_argument("run_dir")
    lbc.add_argument("--bundle", help=bundle_help)
    lbc.set_defaults(func=_cmd_leaderboard_check)
    lba = lb.add_parser("add", help="check a run and copy it into results/<system>/ (never overwrites)")
    lba.add_argument("run_dir")
    lba.add_argument("--system", help="folder name under results/ (default: from the run)")
    lba.add_argument("--bundle", help=bundle_help)
    lba.set_defaults(func=_cmd_leaderboard_add)
